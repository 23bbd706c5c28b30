"""What a speaker of the corpus is, before any audio is decoded: its plan.

Every source (a Debian package, a TTS voice, a user's folder) turns into a list of
`SpeakerPlan`s first. Planning is cheap (file listings, tool checks), so a misspelt test
speaker or a missing folder stops the run before minutes of decoding, and the plans are
small picklable records that worker processes can render independently.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Iterator, Literal, Protocol

import numpy as np

from dpcl.audio import read_audio
from dpcl.errors import DpclError

Sex = Literal["M", "F", "unknown"]
Kind = Literal["real", "synthetic"]
# "known": the label names one person (a credited voice, a KDE language's volunteer, a synthetic
# voice). "uncertain": only a character name, and one actor may voice several characters of a cast;
# such speakers may train, never test (DESIGN.md section 5).
Identity = Literal["known", "uncertain"]

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


class CorpusError(DpclError, RuntimeError):
    """A corpus source is missing, unreadable or inconsistent; the message says what to do."""


class ClipSource(Protocol):
    """Where one speaker's raw clips come from, yielded in a seeded order."""

    def clips(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, int]]:
        """Yield `(mono float64 samples, rate)` clips, lazily: callers stop once they have enough."""
        ...


@dataclasses.dataclass(frozen=True)
class SpeakerPlan:
    """One speaker: its metadata for the manifest and where its audio comes from.

    `group` names speakers that may be one person (the same language's KDE recordings,
    a dub's cast, a game's characters); the split keeps a group on one side of train/test,
    and a mixture never joins two speakers of one group: only different groups are known
    to be different people. `identity` "uncertain" (a character name) keeps a speaker out
    of `tt`.
    """

    speaker: str
    source: str
    language: str
    sex: Sex
    kind: Kind
    group: str
    audio: ClipSource
    identity: Identity = "known"

    def __post_init__(self) -> None:
        if not self.speaker or _ID_UNSAFE.search(self.speaker):
            raise ValueError(f"speaker id {self.speaker!r} must use only [A-Za-z0-9-]")


@dataclasses.dataclass(frozen=True)
class FileClips:
    """Recorded clips in sound files, read in a seeded random order.

    Files sampled below the corpus rate are skipped by the renderer, not here: upsampled audio
    has an empty top band, a cue that would make separation artificially easy.
    """

    paths: tuple[str, ...]

    def clips(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, int]]:
        for index in rng.permutation(len(self.paths)):
            yield read_audio(self.paths[index])


def safe_id(*parts: str) -> str:
    """Join name parts into an id of [A-Za-z0-9-] (the mixer joins ids with `_`)."""
    cleaned = (_ID_UNSAFE.sub("-", part).strip("-") for part in parts)
    return "-".join(part for part in cleaned if part)


# Sibling written forms of one spoken language, for volunteer groups.
LANGUAGE_ALIASES = {"nb": "no", "nn": "no"}


def volunteer_group(language: str) -> str:
    """The speaker group of one language's volunteer recordings, across projects.

    KDE's games and Tux Paint are recorded by volunteers of the same translation communities;
    the Catalan voice of one may be the Catalan voice of the other. So every volunteer set of a
    language shares one group (`volunteers-ca`): never both in tt and tr, never mixed together.
    """
    base = re.split(r"[-_@]", language)[0].lower()
    return safe_id("volunteers", LANGUAGE_ALIASES.get(base, base))


def stable_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator that depends only on the seed and the names, never on processing order.

    Python's `hash()` is salted per process, so the names go through sha256 instead.
    """
    digest = hashlib.sha256("\x00".join(names).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def unique_files(paths: list[Path]) -> list[Path]:
    """Drop byte-identical copies, keeping the first in sorted order.

    Debian's ktuberling ships one Serbian recording under four locale folders; without this
    one voice would become four 'different' speakers.
    """
    seen: set[str] = set()
    kept = []
    for path in sorted(paths):
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            kept.append(path)
    return kept
