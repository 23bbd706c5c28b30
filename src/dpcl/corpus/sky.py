"""Beneath a Steel Sky's data container: the `sky.dnr` index and the `sky.dsk` data file.

The game keeps all of its 5,097 files (graphics, scripts, text, music, and the CD speech) in
one `sky.dsk`, located through `sky.dnr`. Layout, as found in the Debian package 0.0372-8 (every
entry checked: no two overlap, the last ends exactly at the end of `sky.dsk`)::

    sky.dnr: uint32 LE entry count, then 8-byte entries
             uint16 LE file number
             uint24 LE offset; bit 23 set: (offset & 0x7FFFFF) * 16 (files past 8 MB are 16-aligned)
             uint24 LE size and flags: bits 0-21 the stored size,
                      bit 22: the loaded file is the body alone (screens), else header + body
                      bit 23: stored as is (no header, no RNC; the 305 palettes and the like)
    sky.dsk: each other file is a 22-byte header (uint16 flags: bit 7 = compressed; ...,
             uint16 total size at byte 12) followed by an RNC method-1 stream (`dpcl.corpus.rnc`)
             or, in 28 files (none of them speech), bytes with no RNC signature, returned as stored.

Only the body matters here: for the speech files it is the unsigned 8-bit, 11,025 Hz samples.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

from dpcl.corpus import rnc
from dpcl.corpus.plan import CorpusError

ENTRY_SIZE = 8
FILE_HEADER_SIZE = 22
_ALIGNED_OFFSET = 0x800000
_SIZE_MASK = 0x3FFFFF
_BODY_ONLY = 0x400000
_STORED = 0x800000
_HEADER_COMPRESSED = 0x80


@dataclasses.dataclass(frozen=True)
class DiskEntry:
    """Where one file lies in `sky.dsk` and how it is stored."""

    number: int
    offset: int
    size: int
    stored: bool
    body_only: bool


def parse_index(data: bytes, name: str = "sky.dnr") -> dict[int, DiskEntry]:
    """The entries of a `sky.dnr`, by file number; a count that disagrees with the length is an error."""
    if len(data) < 4:
        raise CorpusError(f"{name}: {len(data)} bytes, too short for an entry count")
    (count,) = struct.unpack_from("<I", data)
    if len(data) != 4 + count * ENTRY_SIZE:
        raise CorpusError(f"{name}: says {count} entries ({4 + count * ENTRY_SIZE} bytes) but has "
                          f"{len(data)} bytes; not a Beneath a Steel Sky index, or damaged")
    entries = {}
    for index in range(count):
        start = 4 + index * ENTRY_SIZE
        (number,) = struct.unpack_from("<H", data, start)
        offset = int.from_bytes(data[start + 2:start + 5], "little")
        size_flags = int.from_bytes(data[start + 5:start + 8], "little")
        if offset & _ALIGNED_OFFSET:
            offset = (offset & ~_ALIGNED_OFFSET) << 4
        if number in entries:
            raise CorpusError(f"{name}: file number {number} appears twice")
        entries[number] = DiskEntry(number, offset, size_flags & _SIZE_MASK,
                                    bool(size_flags & _STORED), bool(size_flags & _BODY_ONLY))
    return entries


def decode_entry(entry: DiskEntry, stored: bytes) -> bytes:
    """The body of a file from its stored bytes: unpacked when RNC-packed, else as stored."""
    name = f"sky.dsk file {entry.number}"
    if len(stored) != entry.size:
        raise CorpusError(f"{name}: {len(stored)} of {entry.size} bytes present; sky.dsk is truncated")
    if entry.stored:
        return stored
    if len(stored) < FILE_HEADER_SIZE:
        raise CorpusError(f"{name}: {len(stored)} bytes, shorter than its 22-byte header")
    body = stored[FILE_HEADER_SIZE:]
    if stored[0] & _HEADER_COMPRESSED and rnc.is_rnc(body):
        return rnc.decompress(body, name)
    return body


class SkyDisk:
    """Random access to the files of one `sky.dnr` + `sky.dsk` pair (the data file stays on disk)."""

    def __init__(self, dnr: str | Path, dsk: str | Path) -> None:
        self.dnr, self.dsk = Path(dnr), Path(dsk)
        for path in (self.dnr, self.dsk):
            if not path.is_file():
                raise CorpusError(f"{path} not found: is the beneath-a-steel-sky package unpacked?")
        self.entries = parse_index(self.dnr.read_bytes(), str(self.dnr))

    def read_stored(self, number: int) -> bytes:
        """The bytes of file `number` as they lie in `sky.dsk`."""
        entry = self._entry(number)
        with open(self.dsk, "rb") as handle:
            handle.seek(entry.offset)
            return handle.read(entry.size)

    def read(self, number: int) -> bytes:
        """The body of file `number`, unpacked and CRC-checked when RNC-packed."""
        return decode_entry(self._entry(number), self.read_stored(number))

    def _entry(self, number: int) -> DiskEntry:
        try:
            return self.entries[number]
        except KeyError:
            raise CorpusError(f"{self.dnr} has no file {number}") from None
