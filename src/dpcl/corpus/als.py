"""Drascula's `.ALS` sound files: raw unsigned 8-bit mono PCM at 11,025 Hz inside 32-byte margins.

What the pinned packages (drascula / drascula-spanish 1.0+ds4-2) show, file by file:

* The game engine plays bytes `32 .. size-32` of every file as unsigned 8-bit at 11,025 Hz; the
  first and last 32 bytes are never played. There is no length field or magic in the English
  pack: its 32-byte "header" is plain audio, nearly always silence (0x80).
* The margins are what was left of the files the studio converted from. In the Spanish pack,
  649 of 780 files end in the remains of a RIFF chunk list (`\\x00fact\\x04\\x00\\x00\\x00FILT`)
  inside the last 32 bytes, and its ten effect files `S*.ALS` still begin with a complete
  Creative Voice File (VOC) header: 26 bytes (magic, header size 26, version, checksum) plus a
  6-byte sound-data block header (type 1, 24-bit length, rate byte, codec 0), exactly 32 bytes.
  Two of them (S2, S15) use the VOC 1.20 block (type 9) whose header is 16 bytes, so the engine's
  blind 32-byte cut plays 10 header bytes as sound.
* So a VOC header, where there is one, is the only structure that can be validated: its block
  length tells how many bytes of sound follow, and a file shorter than that is truncated. Such
  files are read from their sound block exactly; all others as the engine plays them.
  Elsewhere only plausibility can be checked: enough bytes for both margins, and samples that
  look like unsigned 8-bit audio (centred on 0x80, not on 0x00 as signed data would be).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dpcl.corpus.plan import CorpusError

ALS_RATE = 11025
HEADER_BYTES = 32
TRAILER_BYTES = 32
_VOC_MAGIC = b"Creative Voice File\x1a"
_VOC_HEADER_SIZE = 26
# Unsigned 8-bit audio has its zero at 0x80; the median byte of a real line (mostly pauses and
# speech around zero) sits within a few steps of it. Signed or 16-bit data read as unsigned
# centres near 0x00/0xff instead.
_MAX_MEDIAN_OFFSET = 32


def voc_sound_span(data: bytes, path: Path) -> tuple[int, int]:
    """Validate a VOC header and its first block; return where that block's sound starts and ends.

    Block type 1 (VOC 1.10) has a 4-byte header after the type byte's 3-byte length: rate and codec;
    type 9 (VOC 1.20) has 12: a 32-bit rate, bits, channels, a 16-bit codec and 4 reserved bytes.
    """
    header_size = int.from_bytes(data[20:22], "little")
    version = int.from_bytes(data[22:24], "little")
    checksum = int.from_bytes(data[24:26], "little")
    if len(data) < _VOC_HEADER_SIZE + 4 or header_size != _VOC_HEADER_SIZE \
            or checksum != (~version + 0x1234) & 0xFFFF:
        raise CorpusError(f"{path}: corrupt Creative Voice header (size field {header_size}, version "
                          f"{version:#06x}, checksum {checksum:#06x} does not match)")
    block_type = data[26]
    length = int.from_bytes(data[27:30], "little")
    if block_type == 1:
        params, pcm_u8 = 2, data[31:32] == b"\x00"
    elif block_type == 9:
        params, pcm_u8 = 12, data[34:38] == b"\x08\x01\x00\x00"  # 8 bits, 1 channel, codec 0
    else:
        raise CorpusError(f"{path}: Creative Voice block type {block_type}; expected sound data (1 or 9)")
    if not pcm_u8:
        raise CorpusError(f"{path}: its Creative Voice sound block is not mono unsigned 8-bit PCM")
    start = 30 + params
    if length <= params or start + length - params > len(data):
        raise CorpusError(f"{path}: truncated: its Creative Voice header announces {length - params} bytes "
                          f"of sound, the file holds {max(len(data) - start, 0)} after the header")
    return start, start + length - params


def decode_als(data: bytes, path: Path) -> np.ndarray:
    """The played part of an ALS file's bytes as float64 in [-1, 1), after the format checks."""
    if len(data) <= HEADER_BYTES + TRAILER_BYTES:
        raise CorpusError(f"{path}: truncated: {len(data)} bytes, no audio between the {HEADER_BYTES}-byte "
                          f"header and the {TRAILER_BYTES}-byte trailer")
    start, stop = voc_sound_span(data, path) if data.startswith(_VOC_MAGIC) else \
        (HEADER_BYTES, len(data) - TRAILER_BYTES)
    body = np.frombuffer(data, dtype=np.uint8)[start:stop]
    if body.min() == body.max():
        raise CorpusError(f"{path}: holds no sound (every sample is {body[0]:#04x})")
    median = int(np.median(body))
    if abs(median - 0x80) > _MAX_MEDIAN_OFFSET:
        raise CorpusError(f"{path}: corrupt or not unsigned 8-bit PCM: its median byte is {median:#04x}, "
                          f"silence is 0x80")
    return (body.astype(np.float64) - 128.0) / 128.0


def read_als(path: str | Path) -> tuple[np.ndarray, int]:
    """Read one `.ALS` file as `(mono float64 samples in [-1, 1), 11025)`; bad files raise CorpusError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CorpusError(f"cannot read {path}: {error.strerror or error}") from None
    return decode_als(data, path), ALS_RATE
