"""Reader of the Flight of the Amazon Queen data container `queen.1c` (as Debian ships it).

Layout, read from the file itself (all integers big-endian):

    bytes 0-3    magic `QTBL`
    bytes 4-11   version, ASCII padded with NULs: `CEM10`
    byte  12     compression of the speech entries: 1 = MP3 (the only kind this reader decodes)
    bytes 13-14  uint16 entry count N
    then N entries of 21 bytes: 12-byte NUL-padded ASCII name (`020006J1.SB`), 1 bundle byte,
    uint32 offset from the start of the file, uint32 size; the payloads follow the table.

In the pinned package the 7,671 payloads tile the file exactly after the table. Each `.SB`
entry is a bare MPEG-2.5 Layer III stream (11,025 Hz mono, 16 kbit/s), no header before the
first frame, which libsndfile decodes from memory.

Everything is checked before a payload is trusted: a truncated download or another game
version would otherwise surface as a confusing decoder error minutes into the corpus build.
"""

from __future__ import annotations

import dataclasses
import io
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from dpcl.corpus.plan import CorpusError

MAGIC = b"QTBL"
VERSION = "CEM10"
COMPRESSION_MP3 = 1
_HEADER = struct.Struct(">4s8sBH")  # magic, version, compression, entry count: 15 bytes
_ENTRY = struct.Struct(">12sBII")  # name, bundle, offset, size: 21 bytes


@dataclasses.dataclass(frozen=True)
class QueenEntry:
    """One named payload of the container: where its bytes lie."""

    name: str
    bundle: int
    offset: int
    size: int


def _read_header(path: Path, data: bytes) -> int:
    """Check magic, version and compression; return the entry count."""
    if len(data) < _HEADER.size:
        raise CorpusError(f"{path}: {len(data)} bytes, too short for the {_HEADER.size}-byte header")
    magic, version, compression, count = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorpusError(f"{path}: bad magic {magic!r}, expected {MAGIC!r} (not a queen.1c container)")
    if version.rstrip(b"\x00") != VERSION.encode():
        raise CorpusError(f"{path}: unsupported version {version.rstrip(bytes(1))!r}, expected {VERSION!r}")
    if compression != COMPRESSION_MP3:
        raise CorpusError(f"{path}: compression byte {compression}, expected {COMPRESSION_MP3} (MP3)")
    if count == 0:
        raise CorpusError(f"{path}: the entry table is empty")
    return count


def _parse_entry(path: Path, raw: bytes, index: int, file_size: int, table_end: int) -> QueenEntry:
    """One 21-byte table row, refused unless its payload lies wholly after the table, inside the file."""
    name_bytes, bundle, offset, size = _ENTRY.unpack(raw)
    try:
        name = name_bytes.split(b"\x00", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        raise CorpusError(f"{path}: entry {index} has a non-ASCII name {name_bytes!r}") from None
    if not name:
        raise CorpusError(f"{path}: entry {index} has an empty name")
    if size == 0:
        raise CorpusError(f"{path}: entry {index} ({name}) has size 0")
    if offset < table_end or offset + size > file_size:
        raise CorpusError(f"{path}: entry {index} ({name}) spans bytes {offset}-{offset + size}, outside "
                          f"the payload area {table_end}-{file_size} (truncated or corrupt file)")
    return QueenEntry(name=name, bundle=bundle, offset=offset, size=size)


def read_table(path: str | Path) -> list[QueenEntry]:
    """All entries of the container, in table order, each checked to lie inside the file."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: container not found")
    file_size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(_HEADER.size)
        count = _read_header(path, head)
        table_end = _HEADER.size + count * _ENTRY.size
        table = handle.read(count * _ENTRY.size)
    if len(table) < count * _ENTRY.size:
        raise CorpusError(f"{path}: the table of {count} entries needs {table_end} bytes, the file has {file_size}")
    entries = [_parse_entry(path, table[i * _ENTRY.size:(i + 1) * _ENTRY.size], i, file_size, table_end)
               for i in range(count)]
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise CorpusError(f"{path}: the table names some entry twice")
    return entries


def read_entry(path: str | Path, entry: QueenEntry) -> bytes:
    """The payload bytes of one entry (the file may have changed since the table was read: checked)."""
    with open(path, "rb") as handle:
        handle.seek(entry.offset)
        data = handle.read(entry.size)
    if len(data) != entry.size:
        raise CorpusError(f"{path}: entry {entry.name} is cut short ({len(data)} of {entry.size} bytes)")
    return data


def decode_sb(data: bytes, label: str) -> tuple[np.ndarray, int]:
    """Decode one `.SB` payload (an MP3 stream) to mono float64 samples and their rate.

    `label` names the entry in errors. The frame-sync check comes first so that a payload of
    another kind (or a misread offset) is reported as such, not as an opaque decoder failure.
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        raise CorpusError(f"{label}: does not start with an MP3 frame header (got {data[:4].hex()})")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    except Exception as error:  # libsndfile raises several types for bad data
        raise CorpusError(f"{label}: cannot decode the MP3 stream ({error})") from None
    if samples.shape[0] == 0:
        raise CorpusError(f"{label}: the MP3 stream decodes to no samples")
    if not np.all(np.isfinite(samples)):
        raise CorpusError(f"{label}: the MP3 stream decodes to NaN or infinite samples")
    return samples.mean(axis=1), int(rate)


def read_sb(path: str | Path, entry: QueenEntry) -> tuple[np.ndarray, int]:
    """Read and decode one `.SB` entry of the container."""
    return decode_sb(read_entry(path, entry), f"{path}:{entry.name}")
