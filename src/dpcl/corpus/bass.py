"""Beneath a Steel Sky (CD version, Debian `beneath-a-steel-sky` 0.0372-8): English dialogue.

The speech is 3,491 files numbered 50007-55277 inside `usr/share/scummvm/beneath-a-steel-sky/
sky.dsk` (index `sky.dnr`, read by `dpcl.corpus.sky`), every one RNC method-1 packed
(`dpcl.corpus.rnc`, both CRCs checked) behind a 22-byte file header that is not part of the
audio; the unpacked body is raw unsigned 8-bit mono at 11,025 Hz: 115.9 minutes in all, median
1.9 s a line (every file decoded once, CRCs good, about 30 s of pure-Python unpacking).

Who speaks a line is decided by the game's scripts, not by its file: numbers run
`50000 + bank start + line`, where the game's text is kept in 8 banks (text number = bank << 12 |
line) whose speech ranges start at 0, 600, 1100, 2430, 3380, 4530, 5080 and 5230 (the largest
gaps of the numbering sit at exactly these starts). A bank is a stretch of the game, so each
speaker here is one *bank*: several characters, with Foster (the player) and Joey (the robot,
whose lines are processed) likely in most of them. Banks 6 and 7 hold only 10 and 4 lines (the
renderer's minimum drops them). The cast is uncredited (8 or more actors, estimated), so all
banks form one group "bass" with identity "uncertain": never mixed with each other (Foster
would meet Foster), never in a test set. Telling characters apart would need the game's
scripts (which object says which text number), which are not read here.

Files 59500-59672 are the CD intro: voice files (numbered between its palettes, screens and
animation sequences) whose narration may carry background effects; `intro=True` adds them as one
more speaker. 59494-59499 come before the intro and are of unknown use; they are never read.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np

from dpcl.corpus.debian import debian_package_root
from dpcl.corpus.plan import CorpusError, SpeakerPlan, safe_id
from dpcl.corpus.sky import SkyDisk, decode_entry

PACKAGE = "beneath-a-steel-sky"
SOURCE = "bass"
GROUP = "bass"
RATE = 11_025
_GAME_DIR = "usr/share/scummvm/beneath-a-steel-sky"
SPEECH_BASE = 50_000
# Where each text bank's speech numbers start (relative to SPEECH_BASE), bank 0 first.
BANK_STARTS = (0, 600, 1100, 2430, 3380, 4530, 5080, 5230)
SPEECH_END = 56_000  # the last speech file is 55277; 59xxx is the intro
INTRO_RANGE = range(59_500, 59_700)
EXPECTED_SPEECH_FILES = 3491  # pinned package: a different count means a different layout


@dataclasses.dataclass(frozen=True)
class SkyClips:
    """Speech files of `sky.dsk`, unpacked one at a time in a seeded random order.

    Holds only paths and numbers, so a plan pickles small; the index is read once per `clips`
    call, and each file only when the consumer asks for the next clip.
    """

    dnr: str
    dsk: str
    numbers: tuple[int, ...]

    def clips(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, int]]:
        disk = SkyDisk(self.dnr, self.dsk)
        with open(disk.dsk, "rb") as handle:
            for index in rng.permutation(len(self.numbers)):
                entry = disk.entries[self.numbers[index]]
                handle.seek(entry.offset)
                yield u8_to_float(decode_entry(entry, handle.read(entry.size))), RATE


def u8_to_float(body: bytes) -> np.ndarray:
    """Unsigned 8-bit samples (silence 0x80) as float64 in [-1, 1)."""
    return (np.frombuffer(body, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0


def bank_of(number: int) -> int:
    """The text bank (0-7) of a speech file number."""
    return bisect_right(BANK_STARTS, number - SPEECH_BASE) - 1


def speech_numbers(disk: SkyDisk) -> list[int]:
    """The speech files of the game, in number order; checked against the pinned count."""
    numbers = sorted(n for n in disk.entries if SPEECH_BASE <= n < SPEECH_END)
    if len(numbers) != EXPECTED_SPEECH_FILES:
        raise CorpusError(f"{disk.dnr}: {len(numbers)} speech files (numbers {SPEECH_BASE}-{SPEECH_END - 1}), "
                          f"expected {EXPECTED_SPEECH_FILES}: not the pinned beneath-a-steel-sky 0.0372-8")
    return numbers


def intro_numbers(disk: SkyDisk) -> list[int]:
    """The CD intro's voice files: packed, kept with their header (screens and sequences are not)."""
    return sorted(n for n in INTRO_RANGE if n in disk.entries
                  and not disk.entries[n].stored and not disk.entries[n].body_only)


def plan_bass_tree(root: str | Path, intro: bool = False) -> list[SpeakerPlan]:
    """Speakers (one per text bank, optionally the intro) of an unpacked package tree."""
    game = Path(root) / _GAME_DIR
    disk = SkyDisk(game / "sky.dnr", game / "sky.dsk")
    by_label: dict[str, list[int]] = defaultdict(list)
    for number in speech_numbers(disk):
        by_label[f"section{bank_of(number)}"].append(number)
    if intro:
        by_label["intro"] = intro_numbers(disk)
    return [SpeakerPlan(speaker=safe_id(SOURCE, label), source=SOURCE, language="en", sex="unknown",
                        kind="real", group=GROUP, identity="uncertain",
                        audio=SkyClips(str(disk.dnr), str(disk.dsk), tuple(numbers)))
            for label, numbers in sorted(by_label.items())]


def plan_bass(download_dir: str, intro: bool = False) -> list[SpeakerPlan]:
    """Speakers of the game, downloading and unpacking its pinned Debian package when needed."""
    return plan_bass_tree(debian_package_root(PACKAGE, download_dir), intro)
