"""Synthesised clips: run a command-line TTS engine once per sentence and read its wav.

Engines are called as their command-line programs (what Debian ships for both), each
sentence into a wav in a private temporary folder. The
sentence order is drawn from the speaker's generator, so every voice says a different,
reproducible selection of the same sentence pool.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from dpcl.audio import read_audio
from dpcl.corpus.plan import CorpusError


@dataclasses.dataclass(frozen=True)
class TtsClips:
    """`command` is an argument list with `{text}` and `{wav}` placeholders."""

    command: tuple[str, ...]
    sentences: tuple[str, ...]

    def clips(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, int]]:
        with tempfile.TemporaryDirectory(prefix="dpcl-tts-", dir=_scratch_dir()) as tmp:
            wav = Path(tmp) / "sentence.wav"
            for index in rng.permutation(len(self.sentences)):
                yield synthesise(self.command, self.sentences[index], wav)


def _scratch_dir() -> str | None:
    """RAM-backed /dev/shm when there is one: a wav per sentence on a slow virtual disk cost
    more (2 ms per unlink, measured) than the synthesis of a short sentence by espeak-ng."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def synthesise(command: tuple[str, ...], text: str, wav: Path) -> tuple[np.ndarray, int]:
    """Run one synthesis; a failure names the command and shows the engine's message."""
    args = [part.format(text=text, wav=wav) for part in command]
    wav.unlink(missing_ok=True)  # never read the previous sentence's file after a silent failure
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise CorpusError(f"TTS engine {args[0]!r} not found: install its Debian package") from None
    if result.returncode != 0 or not wav.is_file():
        raise CorpusError(f"`{' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return read_audio(wav)
