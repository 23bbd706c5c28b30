"""Mixture lists in the official wsj0-2mix format, the activity-level tables, and drawing
new lists from a corpus manifest.

A list line names N source files and a gain in dB for each (`path1 g1 path2 g2`); the
mixture's file name joins utterance ids and gains (`050c0105_0.94642_444c020p_-0.94642.wav`).
Writers reproduce the official files byte for byte, so a list drawn here reads like MERL's.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from dpcl.atomic import write_text
from dpcl.errors import DpclError

GAIN_SIGNIFICANT_DIGITS = 5  # the official lists carry 5 (MATLAB num2str); ours do the same


class MixError(DpclError, ValueError):
    """A mixture list, level table or manifest is malformed, or cannot give what was asked."""


# --------------------------------------------------------------------------- list format


@dataclass(frozen=True)
class MixEntry:
    """One line of a mixture list: source paths (relative to the corpus or WSJ0 root) and gains in dB."""

    sources: tuple[str, ...]
    gains_db: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.gains_db) or not self.sources:
            raise ValueError(f"a mixture needs one gain per source, got {self.sources} and {self.gains_db}")

    @property
    def utterances(self) -> tuple[str, ...]:
        """Utterance ids: the file stems, as in the official names and level tables."""
        return tuple(utterance_id(path) for path in self.sources)


def utterance_id(path: str | Path) -> str:
    """`wsj0/si_tr_s/01t/01to030v.wav` -> `01to030v`."""
    return PurePosixPath(str(path).replace("\\", "/")).stem


def format_gain(gain_db: float) -> str:
    """Gain as the official lists and file names print it (`-0.94642`, `4.6942e-05`, `0`)."""
    return "{:12.8g}".format(gain_db + 0.0).strip()  # + 0.0 turns -0.0 into 0.0


def mixture_name(entry: MixEntry) -> str:
    """Official file name: `<utt1>_<gain1>_<utt2>_<gain2>[...].wav`."""
    parts = (f"{utt}_{format_gain(gain)}" for utt, gain in zip(entry.utterances, entry.gains_db))
    return "_".join(parts) + ".wav"


def read_mix_list(path: str | Path, n_speakers: int) -> list[MixEntry]:
    """Parse an official-format list: `path1 gain1 path2 gain2 [...]` per line."""
    path = Path(path)
    if not path.is_file():
        raise MixError(f"mixture list not found: {path}")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 * n_speakers:
            raise MixError(f"{path}:{number}: {len(fields)} fields, expected {2 * n_speakers} "
                           f"(path gain, {n_speakers} times, for {n_speakers} speakers)")
        try:
            gains = tuple(float(g) for g in fields[1::2])
        except ValueError:
            raise MixError(f"{path}:{number}: gains must be numbers in dB, got {fields[1::2]}") from None
        if not all(math.isfinite(g) for g in gains):
            raise MixError(f"{path}:{number}: gains must be finite, got {fields[1::2]}")
        entries.append(MixEntry(tuple(fields[0::2]), gains))
    if not entries:
        raise MixError(f"{path} lists no mixtures")
    return entries


def write_mix_list(path: str | Path, entries: Iterable[MixEntry]) -> None:
    """Write the official format byte for byte (each field followed by one space, then newline)."""
    lines = ("".join(f"{src} {format_gain(g)} " for src, g in zip(e.sources, e.gains_db)) + "\n" for e in entries)
    write_text(path, "".join(lines))


def read_activlev_tables(folder: str | Path) -> dict[str, float]:
    """Merge every `activlev_*.txt` (`<utterance id> <level>` per line) in `folder`."""
    folder = Path(folder)
    tables = sorted(folder.glob("activlev_*.txt")) if folder.is_dir() else []
    if not tables:
        raise MixError(f"no activlev_*.txt level tables in {folder}")
    levels: dict[str, float] = {}
    for table in tables:
        for number, line in enumerate(table.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                utt, level = fields[0], float(fields[1])
            except (IndexError, ValueError):
                raise MixError(f"{table}:{number}: expected `<utterance id> <level>`, got {line!r}") from None
            if len(fields) != 2 or not (level > 0 and math.isfinite(level)):
                raise MixError(f"{table}:{number}: expected `<utterance id> <positive level>`, got {line!r}")
            if levels.get(utt, level) != level:
                raise MixError(f"{table}:{number}: {utt} has a different level in another table")
            levels[utt] = level
    return levels


def write_activlev_table(path: str | Path, levels: Mapping[str, float]) -> None:
    """Write levels in the official table format (`%.16e`), sorted by utterance id."""
    write_text(path, "".join(f"{utt} {levels[utt]:.16e}\n" for utt in sorted(levels)))


# --------------------------------------------------------------------------- drawing lists


def draw_mix_list(manifest: pd.DataFrame, split: str, count: int, n_speakers: int, max_gain_db: float,
                  rng: np.random.Generator) -> list[MixEntry]:
    """Draw `count` mixtures of `n_speakers` distinct speakers from the utterances of `split`.

    Distinct means distinct speaker *groups* where the manifest has a `group` column: two
    characters of one game's cast may be one actor, so only different groups are known to be
    different people (corpus/split.py states the rule), and a mixture never joins one group twice.

    Utterances are dealt from a shuffled deck, refilled with a fresh shuffle when it runs out,
    so every utterance is used about equally often (a small corpus is not dominated by a few
    clips); no combination of utterances repeats. Gains: +x, -x (x ~ U[0, max_gain_db], rounded
    to 5 significant digits like the official lists, so the list states exactly what is mixed),
    then 0 dB for any further source (wsj0-3mix). The draw depends only on the rows of `split`,
    not on their order in the manifest.
    """
    identity = "group" if "group" in manifest.columns else "speaker"
    rows = manifest.loc[manifest["split"].astype(str) == split, [identity, "path"]].astype(str)
    rows = rows.sort_values("path", kind="stable")
    paths, speakers = rows["path"].tolist(), rows[identity].tolist()
    per_speaker = Counter(speakers)
    if len(per_speaker) < n_speakers:
        raise MixError(f"split {split!r} has {len(per_speaker)} {identity}(s) ({', '.join(sorted(per_speaker))}); "
                       f"{n_speakers}-speaker mixtures need at least {n_speakers} different ones")
    capacity = _distinct_combinations(per_speaker.values(), n_speakers)
    if count > capacity:
        raise MixError(f"split {split!r} asks for {count} mixtures but its utterances form only {capacity} "
                       f"distinct {n_speakers}-speaker combinations: lower mix.counts.{split} or add utterances")
    deck: list[int] = []
    used: set[frozenset[int]] = set()
    entries = []
    for _ in range(count):
        chosen = _deal(deck, speakers, used, n_speakers, rng)
        used.add(frozenset(chosen))
        x = float(f"{rng.uniform(0.0, max_gain_db):.{GAIN_SIGNIFICANT_DIGITS}g}")
        gains = (x, -x) + (0.0,) * (n_speakers - 2)
        entries.append(MixEntry(tuple(paths[i] for i in chosen), gains))
    return entries


def _distinct_combinations(utterances_per_speaker: Iterable[int], n: int) -> int:
    """Number of n-utterance sets with n distinct speakers (elementary symmetric polynomial e_n)."""
    e = [1] + [0] * n  # e[k] over the speakers seen so far
    for count in utterances_per_speaker:
        for k in range(n, 0, -1):
            e[k] += e[k - 1] * count
    return e[n]


def _deal(deck: list[int], speakers: Sequence[str], used: set[frozenset[int]], n: int,
          rng: np.random.Generator) -> list[int]:
    """Take n utterances (indices) off the deck, refilling it with a fresh shuffle if needed."""
    positions = _find_combination(deck, speakers, used, n)
    if positions is None:
        deck.extend(rng.permutation(len(speakers)).tolist())
        positions = _find_combination(deck, speakers, used, n)
    if positions is None:  # only near the capacity checked by the caller
        raise MixError(f"could not find another unused {n}-speaker combination; lower mix.counts")
    chosen = [deck[p] for p in positions]
    for p in sorted(positions, reverse=True):
        del deck[p]
    return chosen


def _find_combination(deck: list[int], speakers: Sequence[str], used: set[frozenset[int]],
                      n: int) -> list[int] | None:
    """Deck positions of n utterances by distinct speakers forming an unused set, front first."""
    for start in range(len(deck)):
        chosen = [start]
        taken = {speakers[deck[start]]}
        for pos, utt in enumerate(deck):
            if pos == start or speakers[utt] in taken:
                continue
            if len(chosen) == n - 1 and frozenset([deck[p] for p in chosen] + [utt]) in used:
                continue
            chosen.append(pos)
            taken.add(speakers[utt])
            if len(chosen) == n:
                return chosen
    return None
