"""Flight of the Amazon Queen (Debian `flight-of-the-amazon-queen`): one speaker per character.

All audio sits in one container, `usr/share/scummvm/flight-of-the-amazon-queen/queen.1c`
(format in `dpcl.corpus.queen`): 6,745 `.SB` speech entries (MP3, 11,025 Hz mono) among the
game's pictures, scripts and music.

Who speaks a line is read from its name, with the dialogue scripts as the key:

- `JOE#####.SB` (564): the hero Joe King describing objects -> `joe`.
- `KKssss[J|P]n.SB` (about 4,770): a line of a conversation. `KK` (two digits) is the talk key of a
  dialogue script `<CHARACTER><n>.DOG` in the same container (a big-endian uint16 at byte 24 of
  the script; e.g. `AND1.DOG` has key 2, `FAYE6.DOG` key 84), `ssss` the step, `J` Joe or `P`
  the person he talks to, `n` the sentence. The person is the script's name without its trailing
  number (`BOB1`..`BOB5` -> `bob`, `AND1` -> `and`, i.e. Anderson). The 73 scripts carry
  exactly the 73 keys the lines use.
- Everything else is excluded, since its name does not say who speaks: cutaway (cut-scene) lines
  `C<scene>_<line>.SB`, `CDINT`/`CINTR`/`COMIC` (intro, credits), whose speaker the cut-scene script
  sets through object numbers; `<room>SSSS`-style entries with no `J`/`P` marker (short, 0.5-1 s,
  presumably effects or object names); and a few odd names (`MIK_*`, `TOM_*`, `DEBBIE_0`, `GM*`,
  `BLANK000` (silence), `ROCKPAKS`, `UNTITLE*`).

A payload byte-identical (sha1) to an earlier kept one, in table order, is dropped, so a line the
game reuses under two names is not counted twice (nor given to two characters).

Nothing is merged, but identity is "uncertain": a character name is not proof of a distinct
actor (an uncredited cast where one actor may voice several characters), so every character
shares the group `fotaq` and no pair within the cast is ever mixed or split across train/test.
Sex is "unknown": the package credits no voices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import struct
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np

from dpcl.corpus.debian import debian_package_root
from dpcl.corpus.plan import CorpusError, SpeakerPlan, safe_id
from dpcl.corpus.queen import QueenEntry, read_entry, read_sb, read_table

PACKAGE = "flight-of-the-amazon-queen"
CONTAINER = "usr/share/scummvm/flight-of-the-amazon-queen/queen.1c"
SOURCE = "fotaq"
GROUP = "fotaq"
JOE = "joe"

_JOE_LINE = re.compile(r"JOE\d{5}")
_DIALOGUE_LINE = re.compile(r"(\d\d)[0-9A-Z]{4}([JP])[0-9A-Z]")
_DOG_KEY_AT = 24  # byte offset of the talk key inside a .DOG script
_DOG_HEADER = (b"AmBk", b"Datas   ")  # bytes 0-3 and 12-19 of every .DOG script


@dataclasses.dataclass(frozen=True)
class QueenClips:
    """One character's lines in the container, decoded lazily in a seeded order."""

    container: str
    entries: tuple[QueenEntry, ...]

    def clips(self, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, int]]:
        for index in rng.permutation(len(self.entries)):
            yield read_sb(self.container, self.entries[index])


def dog_character(name: str) -> str:
    """Character of a dialogue script: `BOB3.DOG` -> `bob`, `SHOWERAM.DOG` -> `showeram`."""
    return re.sub(r"\d+$", "", name.rsplit(".", 1)[0]).lower()


def talk_keys(path: Path, entries: list[QueenEntry]) -> dict[int, str]:
    """Map each dialogue script's talk key to its character, read from the `.DOG` entries."""
    keys: dict[int, str] = {}
    for entry in entries:
        if not entry.name.endswith(".DOG"):
            continue
        data = read_entry(path, entry)
        if len(data) < _DOG_KEY_AT + 2 or data[:4] != _DOG_HEADER[0] or data[12:20] != _DOG_HEADER[1]:
            raise CorpusError(f"{path}:{entry.name}: not a dialogue script (no AmBk/Datas header)")
        (key,) = struct.unpack_from(">H", data, _DOG_KEY_AT)
        if key in keys:
            raise CorpusError(f"{path}:{entry.name}: talk key {key} is also used by another script")
        keys[key] = dog_character(entry.name)
    return keys


def line_character(name: str, keys: dict[int, str]) -> str | None:
    """Who speaks an `.SB` entry, from its name; None when the name does not say (excluded)."""
    if not name.endswith(".SB"):
        return None
    stem = name[:-3]
    if _JOE_LINE.fullmatch(stem):
        return JOE
    match = _DIALOGUE_LINE.fullmatch(stem)
    if match is None:
        return None
    if match.group(2) == "J":
        return JOE
    return keys.get(int(match.group(1)))


def character_entries(path: Path, entries: list[QueenEntry]) -> dict[str, list[QueenEntry]]:
    """Speech entries by character, byte-identical payloads kept once (the first in table order)."""
    keys = talk_keys(path, entries)
    seen: set[str] = set()
    by_character: dict[str, list[QueenEntry]] = defaultdict(list)
    for entry in entries:
        character = line_character(entry.name, keys)
        if character is None:
            continue
        digest = hashlib.sha1(read_entry(path, entry)).hexdigest()
        if digest not in seen:
            seen.add(digest)
            by_character[character].append(entry)
    return dict(by_character)


def plan_fotaq_container(path: Path) -> list[SpeakerPlan]:
    """One speaker per character of the container, sorted by id."""
    by_character = character_entries(path, read_table(path))
    if not by_character:
        raise CorpusError(f"{path}: no dialogue lines (JOE#####.SB or KKssss[JP]n.SB with a .DOG script)")
    return [SpeakerPlan(speaker=safe_id(SOURCE, character), source=SOURCE, language="en", sex="unknown",
                        kind="real", group=GROUP, audio=QueenClips(str(path), tuple(lines)),
                        identity="uncertain")
            for character, lines in sorted(by_character.items())]


def plan_fotaq(download_dir: str) -> list[SpeakerPlan]:
    """Speakers of the pinned Debian package, downloading and unpacking it when needed."""
    path = debian_package_root(PACKAGE, download_dir) / CONTAINER
    if not path.is_file():
        raise CorpusError(f"{path} not found: the {PACKAGE} package layout changed")
    return plan_fotaq_container(path)
