"""Drascula: The Vampire Strikes Back, English and Spanish voice packs: one speaker per character.

Layout: `usr/share/scummvm/drascula/<en|es>/` holds the game's data; its speech is the `.ALS`
files (format in `dpcl.corpus.als`), 783 in English, 780 in Spanish. The file name says who speaks,
as the game engine picks a line's file by the character talking: `<prefix><number>.ALS`, with
prefix '' (a bare number: the hero, John Hacker), D (Count Drascula), VB (Von Braun), I (Igor),
L (the werewolf), BJ (B.J.), T (the bartender), E, P (the pianist), B (the drunk), F.
Speaker rule: one speaker per prefix, except D, which the engine shares between characters: D1-D55
are Drascula's; D57-D64 are the hero's close-up lines (they join the bare numbers); D68-D76 are
the blind man's (his own speaker, `Dblind`); D56, D65-D67 and D77-D83 (the hero, the bartender,
a talking trunk, the blind man: not assignable file by file) are left out.
Effects: `S<number>.ALS` are sound effects (a growl, doors), never speech; they are dropped.
Casts: each pack is one cast (its own speaker group); the characters are not credited, and one
actor may voice several of them, so identity is "uncertain" and sex "unknown".
Duplicates: byte-identical files count once. The Spanish pack links three `.ALS` files (B61, B62,
366) into the English pack: English voices, so symlinks are skipped. Worse, 27 English files hold
the same samples as the Spanish file of the same name in a shifted container (not byte-identical;
found by comparing the sample streams), the Spanish original kept where the English dub had no new
take: they stay in Spanish only (`EN_SHARED_WITH_ES`), so no recording is in both casts.
"""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np

from dpcl.corpus.als import read_als
from dpcl.corpus.debian import debian_package_root
from dpcl.corpus.plan import CorpusError, SpeakerPlan, safe_id, unique_files

PACKAGES = {"en": "drascula", "es": "drascula-spanish"}
SOURCES = {"en": "drascula", "es": "drascula_es"}
_DATA_DIR = "usr/share/scummvm/drascula"
_NAME = re.compile(r"([A-Z]*)(\d+)")
HERO = "N"  # label of the bare-number files: the hero speaks them
EFFECT_PREFIXES = frozenset({"S"})
# The speaking characters' prefixes in the pinned packs; any other name is not a known voice line.
SPEECH_PREFIXES = frozenset({"", "B", "BJ", "D", "E", "F", "I", "L", "P", "T", "VB"})
# D-file numbers -> the character that speaks them (from the engine's calls); other numbers dropped.
D_RANGES = ((range(1, 56), "D"), (range(57, 65), HERO), (range(68, 77), "Dblind"))
# English files whose samples equal the Spanish file of that name (shifted by 1-3 bytes, other
# margins): found by comparing the sample streams of the pinned packs. Spanish originals.
EN_SHARED_WITH_ES = frozenset({
    "20", "25", "26", "39", "40", "45", "47", "49", "51", "52", "53", "62", "63", "64", "99",
    "255", "256", "257", "258", "259", "D40", "D79", "D80", "D81", "F1", "F2", "F3",
})


@dataclasses.dataclass(frozen=True)
class AlsClips:
    """A character's `.ALS` lines, decoded one at a time in a seeded random order."""

    paths: tuple[str, ...]

    def clips(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, int]]:
        for index in rng.permutation(len(self.paths)):
            yield read_als(self.paths[index])


def character(stem: str) -> str | None:
    """The speaker label of a file stem (`VB12` -> `VB`, `117` -> `N`); None for effects and unknowns."""
    match = _NAME.fullmatch(stem.upper())
    if match is None:
        return None
    prefix, number = match.group(1), int(match.group(2))
    if prefix in EFFECT_PREFIXES or prefix not in SPEECH_PREFIXES:
        return None
    if prefix == "D":
        return next((label for numbers, label in D_RANGES if number in numbers), None)
    return prefix or HERO


def speech_files(folder: Path, language: str) -> list[Path]:
    """The pack's own `.ALS` files: symlinks (into the other pack) and shared recordings left out."""
    files = [p for p in folder.iterdir() if p.suffix.upper() == ".ALS" and p.is_file() and not p.is_symlink()]
    if language == "en":
        files = [p for p in files if p.stem.upper() not in EN_SHARED_WITH_ES]
    return unique_files(files)


def plan_drascula_tree(root: Path, language: str) -> list[SpeakerPlan]:
    """Speakers of one voice pack (`en` or `es`) unpacked at `root` (the tree holding `usr/`)."""
    if language not in PACKAGES:
        raise CorpusError(f"Drascula has voice packs {sorted(PACKAGES)}, not {language!r}")
    folder = Path(root) / _DATA_DIR / language
    if not folder.is_dir():
        raise CorpusError(f"no Drascula {language} data folder {folder}: the package layout changed")
    by_character: dict[str, list[Path]] = defaultdict(list)
    for path in speech_files(folder, language):
        label = character(path.stem)
        if label is not None:
            by_character[label].append(path)
    if not by_character:
        raise CorpusError(f"no Drascula speech (*.ALS) under {folder}: the package layout changed")
    cast = safe_id("drascula", language)
    return [SpeakerPlan(speaker=safe_id(cast, label), source=SOURCES[language], language=language,
                        sex="unknown", kind="real", group=cast, identity="uncertain",
                        audio=AlsClips(tuple(str(p) for p in sorted(paths))))
            for label, paths in sorted(by_character.items())]


def plan_drascula(language: str, download_dir: str) -> list[SpeakerPlan]:
    """Speakers of the English (`en`) or Spanish (`es`) pack, downloading its Debian package if needed."""
    if language not in PACKAGES:
        raise CorpusError(f"Drascula has voice packs {sorted(PACKAGES)}, not {language!r}")
    return plan_drascula_tree(debian_package_root(PACKAGES[language], download_dir), language)
