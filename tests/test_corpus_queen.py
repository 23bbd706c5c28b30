"""The queen.1c reader and the fotaq planner, on a tiny container written here in the same format."""

from __future__ import annotations

import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dpcl.corpus.fotaq import line_character, plan_fotaq_container
from dpcl.corpus.plan import CorpusError
from dpcl.corpus.queen import decode_sb, read_sb, read_table

RATE = 11025
TONES = {"020001J1.SB": 300.0, "020001P1.SB": 550.0}


def tone(frequency: float, seconds: float = 1.0) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * RATE)) / RATE)


def mp3_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, RATE, format="MP3")
    return buffer.getvalue()


def dog_script(key: int) -> bytes:
    """The first bytes of a dialogue script: the AmBk/Datas header and the talk key at byte 24."""
    return b"AmBk" + bytes(8) + b"Datas   " + struct.pack(">hHH", 1, key, key) + bytes(20)


def container(entries: list[tuple[str, bytes]], compression: int = 1, magic: bytes = b"QTBL") -> bytes:
    """Header, 21-byte table rows (name, bundle, big-endian offset and size), then the payloads."""
    offset = 15 + 21 * len(entries)
    rows, payloads = [], []
    for name, payload in entries:
        rows.append(struct.pack(">12sBII", name.encode(), 1, offset, len(payload)))
        payloads.append(payload)
        offset += len(payload)
    header = struct.pack(">4s8sBH", magic, b"CEM10", compression, len(entries))
    return header + b"".join(rows) + b"".join(payloads)


@pytest.fixture(scope="module")
def payloads() -> list[tuple[str, bytes]]:
    joe, person = (mp3_bytes(tone(f)) for f in TONES.values())
    return [("AND1.DOG", dog_script(2)), ("020001J1.SB", joe), ("020001P1.SB", person),
            ("020001P2.SB", person),  # byte-identical to P1: dropped
            ("C13A_011.SB", joe)]  # a cut-scene line: its name names no speaker


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "queen.1c"
    path.write_bytes(data)
    return path


def test_reads_table_and_decodes_the_tones(tmp_path: Path, payloads: list[tuple[str, bytes]]) -> None:
    path = write(tmp_path, container(payloads))
    entries = read_table(path)
    assert [e.name for e in entries] == [name for name, _ in payloads]
    for entry in entries:
        if entry.name not in TONES:
            continue
        samples, rate = read_sb(path, entry)
        assert rate == RATE and samples.dtype == np.float64 and samples.ndim == 1
        assert abs(len(samples) - RATE) <= 1152  # one MP3 frame of padding at most
        spectrum = np.abs(np.fft.rfft(samples))
        assert abs(np.argmax(spectrum) * RATE / len(samples) - TONES[entry.name]) < 5
        reference = tone(TONES[entry.name])[:4000]
        lags = [np.dot(samples[lag:lag + 4000], reference) for lag in range(2000)]
        energy = np.linalg.norm(reference) * np.linalg.norm(samples[:6000]) * np.sqrt(4000 / 6000)
        assert max(lags) / energy > 0.9


def test_plan_one_speaker_per_character(tmp_path: Path, payloads: list[tuple[str, bytes]]) -> None:
    plans = plan_fotaq_container(write(tmp_path, container(payloads)))
    assert [p.speaker for p in plans] == ["fotaq-and", "fotaq-joe"]
    assert {p.group for p in plans} == {"fotaq"}
    assert all(p.identity == "uncertain" and p.source == "fotaq" and p.language == "en" for p in plans)
    assert [[e.name for e in p.audio.entries] for p in plans] == [["020001P1.SB"], ["020001J1.SB"]]
    clone = pickle.loads(pickle.dumps(plans[1]))
    samples, rate = next(clone.audio.clips(np.random.default_rng(0)))
    assert rate == RATE and samples.size > 0


def test_line_names() -> None:
    keys = {2: "and", 84: "faye"}
    assert line_character("JOE00311.SB", keys) == "joe"
    assert line_character("84XXXXP1.SB", keys) == "faye"
    assert line_character("0200A1J1.SB", keys) == "joe"
    assert line_character("99000AP1.SB", keys) is None  # no script holds key 99
    assert line_character("10SSSSSS.SB", keys) is None
    assert line_character("C13A_011.SB", keys) is None


@pytest.mark.parametrize("corrupt, message", [
    (lambda data: b"XTBL" + data[4:], "bad magic"),
    (lambda data: data[:12] + b"\x02" + data[13:], "compression byte 2"),
    (lambda data: data[:-100], "outside the payload area"),
    (lambda data: data[:40], "table of 5 entries"),
    (lambda data: data[:9], "too short"),
])
def test_refuses_corrupt_containers(tmp_path: Path, payloads: list[tuple[str, bytes]], corrupt, message: str) -> None:
    path = write(tmp_path, corrupt(container(payloads)))
    with pytest.raises(CorpusError, match=message) as error:
        read_table(path)
    assert str(path) in str(error.value)


def test_refuses_zero_size_and_non_mp3(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="size 0"):
        read_table(write(tmp_path, container([("A.SB", b"")])))
    with pytest.raises(CorpusError, match="MP3 frame header"):
        decode_sb(b"RIFF0000WAVE", "x:A.SB")
