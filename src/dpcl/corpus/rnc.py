"""Rob Northen's RNC ProPack, method 1: the decompressor for Beneath a Steel Sky's data files.

Nothing on PyPI unpacks RNC, and the game's speech (`sky.dsk`, files 50000-59999) is almost all
packed with it, so the corpus needs its own decoder. Written from the public format description
(MultimediaWiki "RNC ProPack") and checked against the game's own CRCs; every packed file carries
two CRC-16s, so a decoding mistake or a damaged file is caught, never passed on as noise.

Stream layout (all header numbers big-endian)::

    0  "RNC" + method byte (1)
    4  uint32 unpacked size        8  uint32 packed size (the bytes after this 18-byte header)
    12 uint16 CRC of the unpacked  14 uint16 CRC of the packed data
    16 uint8 leeway (in-place overlap), 17 uint8 number of pack blocks

The packed data is a bit stream read least-significant bit first from 16-bit little-endian
words, with raw literal bytes interleaved: a literal run is read from the byte stream right
after the last word whose bits were used, and the bit stream continues after the run. Its first
two bits are flags (lock, key). Each pack block then holds three Huffman tables (literal-run
lengths, copy distances, copy lengths: 5 bits count, then 4-bit code lengths, canonical codes
sent bit-reversed), a 16-bit count of (literal run, copy) pairs, and the pairs; the last pair of
a block has no copy. A Huffman symbol `s` stands for `s` when `s < 2`, else for
`2**(s-1) + (s-1 more bits)`; distances add 1, copy lengths add 2.
"""

from __future__ import annotations

import dataclasses
import struct

from dpcl.corpus.plan import CorpusError

MAGIC = b"RNC\x01"
HEADER_SIZE = 18
MAX_CODE_LENGTH = 16
# Zero bytes after the packed data: one (literal, copy) pair reads at most 6 words ahead before
# the bounds check after it, so indexing never fails and overruns are reported, not crashed.
_PADDING = 16


@dataclasses.dataclass(frozen=True)
class RncHeader:
    """The 18-byte header of a method-1 stream."""

    unpacked_size: int
    packed_size: int
    unpacked_crc: int
    packed_crc: int
    leeway: int
    blocks: int


def _crc16_table() -> tuple[int, ...]:
    """CRC-16 (reflected polynomial 0xA001, the 'ARC' CRC) table, one entry per byte value."""
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
        table.append(value)
    return tuple(table)


_CRC_TABLE = _crc16_table()


def crc16(data: bytes | bytearray | memoryview) -> int:
    """RNC's CRC-16: initial value 0, reflected polynomial 0xA001, no final xor."""
    crc = 0
    table = _CRC_TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def is_rnc(data: bytes | bytearray | memoryview) -> bool:
    """Whether `data` starts with a method-1 RNC header."""
    return bytes(data[:4]) == MAGIC


def parse_header(data: bytes | bytearray | memoryview, name: str = "RNC data") -> RncHeader:
    """Read and sanity-check the header; `name` goes into error messages."""
    if len(data) < HEADER_SIZE:
        raise CorpusError(f"{name}: {len(data)} bytes, too short for an 18-byte RNC header (truncated?)")
    if bytes(data[:3]) != b"RNC":
        raise CorpusError(f"{name}: no RNC signature (starts {bytes(data[:4])!r}); not RNC-packed data")
    if data[3] != 1:
        raise CorpusError(f"{name}: RNC method {data[3]}, only method 1 is supported")
    unpacked, packed, unpacked_crc, packed_crc, leeway, blocks = struct.unpack(">IIHHBB", bytes(data[4:18]))
    return RncHeader(unpacked, packed, unpacked_crc, packed_crc, leeway, blocks)


def _huffman_table(lengths: list[int], name: str) -> tuple[list[tuple[int, int] | None], int]:
    """A lookup table indexed by the next `width` stream bits, giving (symbol, code length).

    Codes are canonical (shorter first, then by symbol) and stored bit-reversed, because the
    stream is read least-significant bit first. An over-full set of lengths cannot come from the
    packer; an incomplete one can (unused slots stay None and are an error only if hit).
    """
    width = max(lengths, default=0)
    if width == 0:
        return [], 0
    size = 1 << width
    table: list[tuple[int, int] | None] = [None] * size
    code = 0
    for length in range(1, width + 1):
        for symbol, symbol_length in enumerate(lengths):
            if symbol_length != length:
                continue
            if code >= 1 << length:
                raise CorpusError(f"{name}: Huffman code lengths {lengths} over-subscribe the code space")
            reversed_code = int(f"{code:0{length}b}"[::-1], 2)
            stride = 1 << length
            table[reversed_code::stride] = [(symbol, length)] * (size >> length)
            code += 1
        code <<= 1
    return table, width


class _Reader:
    """The bit stream with interleaved literal bytes, over the packed data (zero-padded).

    `cnt` bits are buffered in `buf` (0-31, at most one word read ahead); `pos` is the next
    unread byte. Reading ahead never goes unchecked: `check_within` compares the bytes really
    used against the packed size.
    """

    __slots__ = ("data", "end", "buf", "cnt", "pos", "name")

    def __init__(self, packed: bytes, name: str) -> None:
        self.data = packed + bytes(_PADDING)
        self.end = len(packed)
        self.buf = 0
        self.cnt = 0
        self.pos = 0
        self.name = name

    def bits(self, count: int) -> int:
        """The next `count` (<= 16) bits as an integer, first bit lowest."""
        if self.cnt < count:
            self._load()
        value = self.buf & ((1 << count) - 1)
        self.buf >>= count
        self.cnt -= count
        return value

    def _load(self) -> None:
        if self.pos + 2 > len(self.data):
            raise CorpusError(f"{self.name}: bit stream runs past the packed data (truncated or corrupt)")
        data = self.data
        self.buf |= (data[self.pos] | data[self.pos + 1] << 8) << self.cnt
        self.pos += 2
        self.cnt += 16

    def check_within(self) -> None:
        used = self.pos - self.cnt // 8  # a last word may be cut to the byte its used bits lie in
        if used > self.end:
            raise CorpusError(f"{self.name}: needs {used} packed bytes, the header says {self.end} "
                              f"(truncated or corrupt)")


def _read_table(reader: _Reader, name: str) -> tuple[list[tuple[int, int] | None], int]:
    count = reader.bits(5)
    if count > MAX_CODE_LENGTH:
        raise CorpusError(f"{name}: Huffman table of {count} symbols (at most 16); corrupt stream")
    return _huffman_table([reader.bits(4) for _ in range(count)], name)


def decompress(data: bytes | bytearray | memoryview, name: str = "RNC data") -> bytes:
    """Unpack one method-1 stream (header included); both CRCs must match.

    The hot loop keeps the bit buffer in local variables: the game's 3,628 speech files are
    about 86 MB unpacked, and attribute access per bit would triple the time.
    """
    header = parse_header(data, name)
    packed = bytes(data[HEADER_SIZE:HEADER_SIZE + header.packed_size])
    if len(packed) < header.packed_size:
        raise CorpusError(f"{name}: header promises {header.packed_size} packed bytes, only "
                          f"{len(packed)} follow (truncated)")
    actual_crc = crc16(packed)
    if actual_crc != header.packed_crc:
        raise CorpusError(f"{name}: CRC of the packed data is {actual_crc:#06x}, the header says "
                          f"{header.packed_crc:#06x}: the file is damaged")
    out = _unpack(packed, header, name)
    actual_crc = crc16(out)
    if actual_crc != header.unpacked_crc:
        raise CorpusError(f"{name}: CRC of the unpacked data is {actual_crc:#06x}, the header says "
                          f"{header.unpacked_crc:#06x}: the decoder or the file is wrong")
    return out


def _unpack(packed: bytes, header: RncHeader, name: str) -> bytes:
    """The LZ + Huffman decoding proper, without CRC checks."""
    reader = _Reader(packed, name)
    reader.bits(1)  # lock flag: only meaningful to the original 68000 unpacker
    if reader.bits(1):
        raise CorpusError(f"{name}: RNC stream is encrypted with a key; cannot unpack")
    out = bytearray()
    size = header.unpacked_size
    data = reader.data
    block_count = 0
    while len(out) < size:
        block_count += 1
        literals = _read_table(reader, f"{name} literal table")
        distances = _read_table(reader, f"{name} distance table")
        lengths = _read_table(reader, f"{name} length table")
        pairs = reader.bits(16)
        if pairs == 0:
            raise CorpusError(f"{name}: pack block with no literal/copy pairs; corrupt stream")
        buf, cnt, pos = reader.buf, reader.cnt, reader.pos
        for pair in range(pairs - 1, -1, -1):
            # -- literal run length
            table, width = literals
            if cnt < 16:
                buf |= (data[pos] | data[pos + 1] << 8) << cnt
                pos += 2
                cnt += 16
            entry = table[buf & ((1 << width) - 1)] if width else None
            if entry is None:
                raise CorpusError(f"{name}: invalid literal-length Huffman code; corrupt stream")
            symbol, used = entry
            buf >>= used
            cnt -= used
            if symbol >= 2:
                extra = symbol - 1
                if cnt < extra:
                    buf |= (data[pos] | data[pos + 1] << 8) << cnt
                    pos += 2
                    cnt += 16
                symbol = (1 << extra) | (buf & ((1 << extra) - 1))
                buf >>= extra
                cnt -= extra
            if symbol:
                if cnt >= 16:  # give back the word read ahead: the literals start there
                    pos -= 2
                    cnt -= 16
                    buf &= (1 << cnt) - 1
                if pos + symbol > reader.end:
                    raise CorpusError(f"{name}: literal run past the end of the packed data (truncated)")
                out += data[pos:pos + symbol]
                pos += symbol
            if not pair:
                break
            # -- copy distance
            table, width = distances
            if cnt < 16:
                buf |= (data[pos] | data[pos + 1] << 8) << cnt
                pos += 2
                cnt += 16
            entry = table[buf & ((1 << width) - 1)] if width else None
            if entry is None:
                raise CorpusError(f"{name}: invalid distance Huffman code; corrupt stream")
            symbol, used = entry
            buf >>= used
            cnt -= used
            if symbol >= 2:
                extra = symbol - 1
                if cnt < extra:
                    buf |= (data[pos] | data[pos + 1] << 8) << cnt
                    pos += 2
                    cnt += 16
                symbol = (1 << extra) | (buf & ((1 << extra) - 1))
                buf >>= extra
                cnt -= extra
            distance = symbol + 1
            # -- copy length
            table, width = lengths
            if cnt < 16:
                buf |= (data[pos] | data[pos + 1] << 8) << cnt
                pos += 2
                cnt += 16
            entry = table[buf & ((1 << width) - 1)] if width else None
            if entry is None:
                raise CorpusError(f"{name}: invalid copy-length Huffman code; corrupt stream")
            symbol, used = entry
            buf >>= used
            cnt -= used
            if symbol >= 2:
                extra = symbol - 1
                if cnt < extra:
                    buf |= (data[pos] | data[pos + 1] << 8) << cnt
                    pos += 2
                    cnt += 16
                symbol = (1 << extra) | (buf & ((1 << extra) - 1))
                buf >>= extra
                cnt -= extra
            _copy(out, distance, symbol + 2, name)
            if len(out) > size:  # checked per copy: a corrupt count could otherwise ask for gigabytes
                raise CorpusError(f"{name}: unpacks to more than the {size} bytes the header says; corrupt stream")
            if pos - cnt // 8 > reader.end:
                raise CorpusError(f"{name}: bit stream runs past the packed data (truncated or corrupt)")
        reader.buf, reader.cnt, reader.pos = buf, cnt, pos
        reader.check_within()
        if len(out) > size:
            raise CorpusError(f"{name}: unpacks to more than the {size} bytes the header says; corrupt stream")
        if header.blocks and block_count >= header.blocks and len(out) < size:
            raise CorpusError(f"{name}: {header.blocks} pack blocks give {len(out)} of {size} bytes; corrupt stream")
    if header.blocks and block_count != header.blocks:
        raise CorpusError(f"{name}: {block_count} pack blocks, the header says {header.blocks}; corrupt stream")
    return bytes(out)


def _copy(out: bytearray, distance: int, length: int, name: str) -> None:
    """Append `length` bytes starting `distance` back; overlapping copies repeat the pattern."""
    start = len(out) - distance
    if start < 0:
        raise CorpusError(f"{name}: copy from {distance} bytes back with only {len(out)} written; corrupt stream")
    if distance >= length:
        out += out[start:start + length]
    else:
        pattern = out[start:]
        out += (pattern * (length // distance + 1))[:length]
