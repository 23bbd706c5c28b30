"""RNC method-1 decoding, the sky.dnr/sky.dsk reader and the Beneath a Steel Sky planner.

There is no RNC packer to call, so the tests carry a small encoder written from the format
description (canonical Huffman codes sent most significant bit first, LSB-first 16-bit words,
literal bytes interleaved after the last word in use). Round trips through it check the decoder
bit for bit; streams that decode but were never made by a packer check its error paths.
"""

from __future__ import annotations

import pickle
import random
import struct
from pathlib import Path

import numpy as np
import pytest

from dpcl.corpus import bass, rnc, sky
from dpcl.corpus.plan import CorpusError

UNIFORM = [4] * 16  # a complete code: 16 symbols of 4 bits
SKEWED = list(range(1, 16)) + [15]  # complete too, with codes of 1 to 15 bits


def crc16_bitwise(data: bytes) -> int:
    """CRC-16/ARC one bit at a time, independent of the table the decoder uses."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


class BitWriter:
    """Bits LSB-first into 16-bit little-endian words; raw bytes go after the current word."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.word_at = -1
        self.used = 16

    def bit(self, value: int) -> None:
        if self.used == 16:
            self.word_at = len(self.out)
            self.out += b"\x00\x00"
            self.used = 0
        if value:
            self.out[self.word_at + self.used // 8] |= 1 << (self.used % 8)
        self.used += 1

    def bits(self, value: int, count: int) -> None:
        for index in range(count):
            self.bit((value >> index) & 1)

    def raw(self, data: bytes) -> None:
        self.out += data


def canonical_codes(lengths: list[int]) -> dict[int, tuple[int, int]]:
    """symbol -> (code, length), codes given out shortest first, then by symbol."""
    codes, code = {}, 0
    for length in range(1, 17):
        for symbol in (s for s, n in enumerate(lengths) if n == length):
            codes[symbol] = (code, length)
            code += 1
        code <<= 1
    return codes


def put_value(writer: BitWriter, codes: dict[int, tuple[int, int]], value: int) -> None:
    symbol = value.bit_length()
    code, length = codes[symbol]
    for index in reversed(range(length)):  # most significant code bit first
        writer.bit((code >> index) & 1)
    if symbol >= 2:
        writer.bits(value - (1 << (symbol - 1)), symbol - 1)


def tokens(data: bytes, window: int = 512) -> list[tuple[bytes, tuple[int, int] | None]]:
    """Greedy LZ parse into (literal run, (distance, length) or None at the end)."""
    result, run, position = [], bytearray(), 0
    while position < len(data):
        best = (0, 0)
        for distance in range(1, min(window, position) + 1):
            length = 0
            while (position + length < len(data) and length < 300
                   and data[position + length - distance] == data[position + length]):
                length += 1
            if length > best[1]:
                best = (distance, length)
        if best[1] >= 3:
            result.append((bytes(run), best))
            run = bytearray()
            position += best[1]
        else:
            run.append(data[position])
            position += 1
    result.append((bytes(run), None))
    return result


def rnc_pack(data: bytes, blocks: int = 1, tables: tuple[list[int], ...] = (UNIFORM, SKEWED, UNIFORM),
             lz: bool = True) -> bytes:
    """An RNC method-1 stream of `data` in `blocks` pack blocks, header and CRCs included."""
    writer = BitWriter()
    writer.bits(0, 2)  # lock and key flags
    step = -(-len(data) // blocks)
    for start in range(0, len(data), step):
        chunk = data[start:start + step]
        for lengths in tables:
            writer.bits(len(lengths), 5)
            for length in lengths:
                writer.bits(length, 4)
        pairs = tokens(chunk) if lz else [(chunk, None)]
        writer.bits(len(pairs), 16)
        literal, distance, copy = (canonical_codes(lengths) for lengths in tables)
        for run, match in pairs:
            put_value(writer, literal, len(run))
            writer.raw(run)
            if match is not None:
                put_value(writer, distance, match[0] - 1)
                put_value(writer, copy, match[1] - 2)
    packed = bytes(writer.out)
    header = b"RNC\x01" + struct.pack(">IIHHBB", len(data), len(packed), crc16_bitwise(data),
                                      crc16_bitwise(packed), 0, -(-len(data) // step))
    return header + packed


def sample_data(size: int = 3000, seed: int = 1) -> bytes:
    """Noise, runs and repeated phrases: literals, overlapping and distant copies all occur."""
    chooser = random.Random(seed)
    parts = []
    while sum(map(len, parts)) < size:
        kind = chooser.randrange(3)
        if kind == 0:
            parts.append(bytes(chooser.randrange(256) for _ in range(chooser.randrange(1, 40))))
        elif kind == 1:
            parts.append(bytes([chooser.randrange(256)]) * chooser.randrange(3, 200))
        else:
            parts.append(b"the robot's lines are processed. " * chooser.randrange(1, 4))
    return b"".join(parts)[:size]


# --- RNC ---------------------------------------------------------------------------------------

def test_crc16_matches_the_arc_check_value():
    assert rnc.crc16(b"123456789") == 0xBB3D == crc16_bitwise(b"123456789")


@pytest.mark.parametrize("blocks", [1, 3])
def test_round_trip_is_bit_exact(blocks):
    data = sample_data()
    packed = rnc_pack(data, blocks=blocks)
    assert len(packed) < len(data)  # copies were used
    assert rnc.decompress(packed) == data


def test_round_trip_with_skewed_literal_table_and_literals_only():
    data = sample_data(1500, seed=7)
    assert rnc.decompress(rnc_pack(data, tables=(SKEWED, UNIFORM, SKEWED))) == data
    assert rnc.decompress(rnc_pack(data, lz=False)) == data
    assert rnc.decompress(rnc_pack(b"x")) == b"x"


def test_header_is_parsed():
    packed = rnc_pack(b"abcabcabcabc")
    header = rnc.parse_header(packed)
    assert (header.unpacked_size, header.packed_size, header.blocks) == (12, len(packed) - 18, 1)
    assert header.unpacked_crc == crc16_bitwise(b"abcabcabcabc")


def test_flipped_byte_is_a_crc_error():
    packed = bytearray(rnc_pack(sample_data()))
    packed[40] ^= 0x10
    with pytest.raises(CorpusError, match="CRC of the packed data"):
        rnc.decompress(bytes(packed), "speech 50123")


def test_wrong_unpacked_crc_is_reported():
    packed = bytearray(rnc_pack(sample_data()))
    packed[12] ^= 0xFF
    with pytest.raises(CorpusError, match="CRC of the unpacked data"):
        rnc.decompress(bytes(packed))


@pytest.mark.parametrize("keep", [0, 10, 18, 100, -1])
def test_truncated_input_is_reported(keep):
    packed = rnc_pack(sample_data())
    with pytest.raises(CorpusError, match="truncated"):
        rnc.decompress(packed[:keep] if keep >= 0 else packed[:-1])


def test_not_rnc_or_other_method():
    with pytest.raises(CorpusError, match="no RNC signature"):
        rnc.decompress(b"PK\x03\x04" + bytes(20))
    with pytest.raises(CorpusError, match="method 2"):
        rnc.decompress(b"RNC\x02" + bytes(20))


def test_corrupt_streams_with_valid_crc_fail_cleanly():
    """Damage that the packed CRC cannot see (recomputed) must still end in a CorpusError."""
    packed = rnc_pack(sample_data(800))
    chooser = random.Random(3)
    for _ in range(150):
        damaged = bytearray(packed)
        damaged[chooser.randrange(18, len(damaged))] ^= 1 << chooser.randrange(8)
        damaged[14:16] = struct.pack(">H", crc16_bitwise(bytes(damaged[18:])))
        try:
            rnc.decompress(bytes(damaged))
        except CorpusError:
            pass


def test_unpacked_size_is_enforced():
    packed = bytearray(rnc_pack(b"a" * 500))
    packed[4:8] = struct.pack(">I", 100)
    with pytest.raises(CorpusError, match="more than the 100 bytes"):
        rnc.decompress(bytes(packed))


# --- sky.dnr / sky.dsk -------------------------------------------------------------------------

SPEECH_A = bytes(range(100, 160)) * 20  # packed, with the 22-byte file header
SPEECH_B = bytes([0x80, 0xFF, 0x00, 0x81])  # stored as is, at a 16-aligned offset


def write_sky(folder: Path, numbers: tuple[int, int] = (50601, 51101)) -> tuple[Path, Path]:
    """A two-file index and data file laid out as the game's."""
    packed = rnc_pack(SPEECH_A)
    header = struct.pack("<H", 0x81) + bytes(10) + struct.pack("<H", len(SPEECH_A) + 22) + bytes(8)
    first = header + packed
    second_at = -(-len(first) // 16) * 16 + 16
    dsk = first + bytes(second_at - len(first)) + SPEECH_B
    entries = struct.pack("<I", 2)
    entries += struct.pack("<H", numbers[0]) + (0).to_bytes(3, "little") + len(first).to_bytes(3, "little")
    entries += (struct.pack("<H", numbers[1]) + (0x800000 | second_at >> 4).to_bytes(3, "little")
                + (0x800000 | len(SPEECH_B)).to_bytes(3, "little"))
    (folder / "sky.dnr").write_bytes(entries)
    (folder / "sky.dsk").write_bytes(dsk)
    return folder / "sky.dnr", folder / "sky.dsk"


def test_index_and_files_are_read(tmp_path):
    dnr, dsk = write_sky(tmp_path)
    disk = sky.SkyDisk(dnr, dsk)
    assert sorted(disk.entries) == [50601, 51101]
    assert not disk.entries[50601].stored and disk.entries[51101].stored
    assert disk.read(50601) == SPEECH_A
    assert disk.read(51101) == SPEECH_B
    with pytest.raises(CorpusError, match="no file 7"):
        disk.read(7)


def test_bad_index_and_short_data_file(tmp_path):
    dnr, dsk = write_sky(tmp_path)
    with pytest.raises(CorpusError, match="says 2 entries"):
        sky.parse_index(dnr.read_bytes()[:-1])
    dsk.write_bytes(dsk.read_bytes()[:-2])
    with pytest.raises(CorpusError, match="truncated"):
        sky.SkyDisk(dnr, dsk).read(51101)


# --- planner -----------------------------------------------------------------------------------

def test_bank_boundaries():
    assert [bass.bank_of(n) for n in (50007, 50599, 50600, 51100, 52429, 52430, 55277)] == [0, 0, 1, 2, 2, 3, 7]


def test_plan_and_clips(tmp_path, monkeypatch):
    game = tmp_path / "usr/share/scummvm/beneath-a-steel-sky"
    game.mkdir(parents=True)
    write_sky(game)
    monkeypatch.setattr(bass, "EXPECTED_SPEECH_FILES", 2)
    plans = bass.plan_bass_tree(tmp_path)
    assert [p.speaker for p in plans] == ["bass-section1", "bass-section2"]
    assert {(p.source, p.language, p.sex, p.kind, p.group, p.identity) for p in plans} == {
        ("bass", "en", "unknown", "real", "bass", "uncertain")}
    plan = pickle.loads(pickle.dumps(plans[1]))
    (samples, rate), = list(plan.audio.clips(np.random.default_rng(0)))
    assert rate == 11025
    np.testing.assert_array_equal(samples, [0.0, 127 / 128, -1.0, 1 / 128])
    monkeypatch.setattr(bass, "EXPECTED_SPEECH_FILES", 3)
    with pytest.raises(CorpusError, match="expected 3"):
        bass.plan_bass_tree(tmp_path)


REAL = Path(__file__).resolve().parents[1] / "data/external/beneath-a-steel-sky_0.0372-8_all.unpacked"


@pytest.mark.skipif(not REAL.is_dir(), reason="beneath-a-steel-sky package not unpacked here")
def test_real_speech_files_decode():
    plans = bass.plan_bass_tree(REAL)
    assert len(plans) == 8 and sum(len(p.audio.numbers) for p in plans) == 3491
    clips = plans[1].audio.clips(np.random.default_rng(0))
    for _ in range(3):
        samples, rate = next(clips)
        assert rate == 11025 and 0.2 < len(samples) / rate < 30 and abs(samples.mean()) < 0.05
