"""Stage `mix`: the WSJ0-2mix recipe (DESIGN.md section 4); lists and levels are in mixlists.py.

The recipe, for N speakers (2: wsj0-2mix, 3: wsj0-3mix):

1. A list names, per mixture, N utterances by N different speakers and a gain in dB for each:
   +x and -x with x ~ U[0, 2.5] for the first two, 0 dB for the others.
2. Each source is divided by sqrt(its ITU-T P.56 active speech level), then scaled by 10^(g/20),
   so the sources are 2x dB apart *in active speech level*, whatever their pauses.
3. `min` truncates every source to the shortest, `max` zero-pads to the longest; mix = sum.
4. One common gain per mixture brings max(|mix|, |s_i|) to 0.9, and everything is written as
   int16 by round(2^15 x) (MATLAB's wavwrite): the written mix equals the sum of the written
   sources up to rounding (1 LSB for 2 sources), and the gain differences survive.

Lists are either drawn here from a corpus manifest (seeded, speakers never shared between the
test split and the others) or read from the official wsj0-2mix/3mix files to rebuild the
published data set from a user's WSJ0 copy with the official precomputed levels.

Output (`out_dir`): lists/mix_<n>_spk_{tr,cv,tt}.txt, activlev/activlev_<corpus|wsj0>.txt,
<mode>/<split>/{mix,s1,s2,...}/<name>.wav, <mode>/<split>/mixtures.csv, summary.json.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, TypeVar

import numpy as np
import pandas as pd
from tqdm import tqdm

from dpcl.activlev import active_level
from dpcl.atomic import atomic_dir, write_json
from dpcl.audio import AudioError, read_audio, resample, write_wav
from dpcl.config import MixConfig, Params, params_to_dict
from dpcl.mixlists import (
    MixEntry,
    MixError,
    draw_mix_list,
    mixture_name,
    read_activlev_tables,
    read_mix_list,
    utterance_id,
    write_activlev_table,
    write_mix_list,
)

SPLITS = ("tr", "cv", "tt")
MIN_SOURCE_S = 0.5
WSJ0_RATE = 16000
MANIFEST_COLUMNS = ("speaker", "path", "split")
SPEAKER_ATTRIBUTES = ("sex", "language", "kind", "source", "group")  # copied to mixtures.csv when present
PARALLEL_MIN_JOBS = 1000  # per split; below it a pool costs what it saves (2 cores: 0.6-0.8x at 200, 1.1-1.4x at 2200)

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
Mode = Literal["min", "max"]


# --------------------------------------------------------------------------- mixing


@dataclass(frozen=True)
class MixResult:
    """One mixture: mix (T,), the scaled sources (each (T,)), and the common gain applied to all."""

    mix: np.ndarray
    sources: tuple[np.ndarray, ...]
    scale: float


def mix_sources(sources: Sequence[np.ndarray], levels: Sequence[float], gains_db: Sequence[float],
                mode: Mode, peak: float = 0.9) -> MixResult:
    """The recipe's steps 2-4 on float signals (see the module docstring).

    `levels` are the P.56 active levels (power) of `sources`; `scale` is the common gain applied
    after level normalisation and dB gains, so source i was multiplied by
    scale * 10^(g_i/20) / sqrt(level_i) in total (MATLAB's `scaling_8k`).
    """
    if not (len(sources) == len(levels) == len(gains_db)) or not sources:
        raise ValueError(f"need one level and one gain per source, got {len(sources)} sources, "
                         f"{len(levels)} levels, {len(gains_db)} gains")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if not all(level > 0 and math.isfinite(level) for level in levels):
        raise ValueError(f"active levels must be positive and finite, got {list(levels)}")
    lengths = [len(s) for s in sources]
    length = min(lengths) if mode == "min" else max(lengths)
    stacked = np.zeros((len(sources), length))  # (C, T)
    for i, (source, level, gain) in enumerate(zip(sources, levels, gains_db)):
        kept = np.asarray(source, dtype=np.float64)[:length]
        stacked[i, : len(kept)] = kept * (10.0 ** (gain / 20.0) / math.sqrt(level))
    mix = stacked.sum(axis=0)  # (T,)
    top = max(float(np.max(np.abs(mix))), float(np.max(np.abs(stacked)))) if length else 0.0
    if top == 0.0:
        raise ValueError("the sources are silent over the mixture's length: nothing to scale to the peak")
    scale = peak / top
    return MixResult(mix=mix * scale, sources=tuple(stacked * scale), scale=scale)


def _check_length(samples: np.ndarray, rate: int, path: Path) -> None:
    if len(samples) < MIN_SOURCE_S * rate:
        raise AudioError(f"{path} lasts {len(samples) / rate:.3f} s; mixing needs sources of at least "
                         f"{MIN_SOURCE_S} s (a `min` mixture is as short as its shortest source)")


def read_corpus_source(path: Path, rate: int) -> np.ndarray:
    """A corpus utterance: must already be at the corpus rate, and long enough to mix."""
    samples, _ = read_audio(path, expected_rate=rate)
    _check_length(samples, rate, path)
    return samples


def read_wsj0_source(path: Path, rate: int) -> np.ndarray:
    """A WSJ0 utterance (16 kHz; the raw `.wv1`, shorten-compressed or not, or a `.wav` copy), resampled to `rate`."""
    file = _resolve_wsj0_file(path)
    samples, _ = read_audio(file, expected_rate=WSJ0_RATE)
    samples = resample(samples, WSJ0_RATE, rate)
    _check_length(samples, rate, file)
    return samples


def _resolve_wsj0_file(path: Path) -> Path:
    """The audio of a listed WSJ0 path (the lists name `.wav`): a `.wav` copy beside the utterance
    wins, else the raw `.wv1` itself (NIST SPHERE, read by `read_audio`)."""
    candidates = list(dict.fromkeys([path.with_suffix(".wav"), path, path.with_suffix(".wv1")]))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise AudioError(f"WSJ0 audio not found: tried {', '.join(map(str, candidates))} "
                     "(mix.wsj0_root must be the folder holding wsj0/)")


def measure_level(path: Path, rate: int) -> float:
    """P.56 active level of one corpus utterance; errors name the file."""
    samples = read_corpus_source(path, rate)
    try:
        return active_level(samples, rate).level
    except ValueError as error:
        raise AudioError(f"{path}: {error}") from None


@dataclass(frozen=True)
class _MixJob:
    """Everything a worker process needs to build and write one mixture in every mode."""

    name: str
    files: tuple[Path, ...]
    levels: tuple[float, ...]
    gains_db: tuple[float, ...]
    split_dirs: tuple[tuple[Mode, Path], ...]  # (mode, <staging>/<mode>/<split>)
    rate: int
    peak: float
    reader: Callable[[Path, int], np.ndarray]


def _mix_and_write(job: _MixJob) -> list[tuple[int, float]]:
    """Read the sources once, write the mixture for each mode; returns (n_samples, scale) per mode."""
    sources = [job.reader(file, job.rate) for file in job.files]
    out = []
    for mode, split_dir in job.split_dirs:
        result = mix_sources(sources, job.levels, job.gains_db, mode, job.peak)
        write_wav(split_dir / "mix" / job.name, result.mix, job.rate)
        for i, source in enumerate(result.sources, start=1):
            write_wav(split_dir / f"s{i}" / job.name, source, job.rate)
        out.append((len(result.mix), result.scale))
    return out


def parallel_map(fn: Callable[[T], R], jobs: Sequence[T], desc: str, workers: int | None) -> list[R]:
    """`map` with progress, in order. workers=None: all cores, but serially for small jobs lists
    where starting processes costs more than it saves; an explicit count is used as given."""
    if workers is None:
        workers = 1 if len(jobs) < PARALLEL_MIN_JOBS else (os.cpu_count() or 1)
    progress: dict[str, Any] = dict(total=len(jobs), desc=desc, mininterval=2)
    if workers <= 1:
        return [fn(job) for job in tqdm(jobs, **progress)]
    chunk = max(1, min(32, len(jobs) // (8 * workers)))
    pool = ProcessPoolExecutor(max_workers=workers)
    try:
        results = list(tqdm(pool.map(fn, jobs, chunksize=chunk), **progress))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # fail fast: drop the queued chunks
        raise
    pool.shutdown()
    return results


# --------------------------------------------------------------------------- the stage


@dataclass
class _Plan:
    """What to mix: lists per split, a level per utterance id, where the audio is, speaker facts."""

    lists: dict[str, list[MixEntry]]
    levels: dict[str, float]
    root: Path
    reader: Callable[[Path, int], np.ndarray]
    table_name: str  # activlev/<table_name>.txt
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)  # source path -> speaker, sex, ...


def run_mix(params: Params, corpus_dir: Path | None, out_dir: Path, workers: int | None = None) -> None:
    """The stage: lists, levels and mixture wavs for every split and mode, written atomically.

    `workers`: processes for reading, mixing and writing (None: all cores when there is enough
    work). The output does not depend on it. `mix.recipe: librimix` goes to src/dpcl/librimix.py;
    only lists drawn from a corpus read `corpus_dir`.
    """
    cfg, rate = params.mix, params.corpus.sample_rate
    if cfg.recipe == "librimix":
        from dpcl.librimix import run_librimix  # it imports this module: loaded here, not at the top

        return run_librimix(params, Path(out_dir), workers)
    if corpus_dir is None and not cfg.official_lists:
        raise MixError("the wsj0-2mix recipe draws its lists from the corpus: give the corpus folder (--corpus)")
    with atomic_dir(out_dir) as staging:
        plan = _official_plan(cfg) if cfg.official_lists else _corpus_plan(cfg, rate, Path(corpus_dir), workers)
        for split in SPLITS:
            write_mix_list(staging / "lists" / f"mix_{cfg.n_speakers}_spk_{split}.txt", plan.lists[split])
        used = {u for entries in plan.lists.values() for e in entries for u in e.utterances}
        write_activlev_table(staging / "activlev" / f"{plan.table_name}.txt",
                             {u: plan.levels[u] for u in used} if cfg.official_lists else plan.levels)
        summary: dict[str, Any] = {"lists": "official" if cfg.official_lists else "drawn", "sample_rate": rate,
                                   "mix": params_to_dict(cfg), "splits": {}}
        for split in SPLITS:
            summary["splits"][split] = _mix_split(plan, split, staging, cfg, rate, workers)
        write_json(staging / "summary.json", summary)


def _mix_split(plan: _Plan, split: str, staging: Path, cfg: MixConfig, rate: int,
               workers: int | None) -> dict[str, Any]:
    """Write one split's wavs for every mode plus a mixtures.csv per mode; returns its summary."""
    entries = plan.lists[split]
    names = [mixture_name(e) for e in entries]
    repeated = [name for name, n in Counter(names).items() if n > 1]
    if repeated:
        raise MixError(f"split {split!r} names {repeated[0]} more than once: the list repeats a mixture")
    split_dirs = tuple((mode, staging / mode / split) for mode in cfg.modes)
    jobs = [_MixJob(name=name, files=tuple(plan.root / s for s in e.sources),
                    levels=tuple(plan.levels[u] for u in e.utterances), gains_db=e.gains_db,
                    split_dirs=split_dirs, rate=rate, peak=cfg.peak, reader=plan.reader)
            for name, e in zip(names, entries)]
    log.info("split %s: %d mixtures, modes %s", split, len(jobs), ", ".join(cfg.modes))
    results = parallel_map(_mix_and_write, jobs, f"mix {split}", workers)
    summary = {}
    for m, (mode, split_dir) in enumerate(split_dirs):
        rows = [_csv_row(plan, job, e, *result[m], rate) for job, e, result in zip(jobs, entries, results)]
        table = pd.DataFrame(rows)
        table.to_csv(split_dir / "mixtures.csv", index=False)
        summary[mode] = {"mixtures": len(table), "hours": round(float(table["duration"].sum()) / 3600, 6)}
    return summary


def _csv_row(plan: _Plan, job: _MixJob, entry: MixEntry, n_samples: int, scale: float, rate: int) -> dict[str, Any]:
    row: dict[str, Any] = {"name": job.name, "n_samples": n_samples, "duration": n_samples / rate, "scale": scale}
    for i, (source, utt, gain) in enumerate(zip(entry.sources, entry.utterances, entry.gains_db), start=1):
        row[f"utterance_{i}"] = utt
        row[f"gain_{i}"] = gain
        row[f"level_{i}"] = plan.levels[utt]
        for key, value in plan.attributes.get(source, {"speaker": utt[:3]}).items():
            row[f"{key}_{i}"] = value
    return row


def _corpus_plan(cfg: MixConfig, rate: int, corpus_dir: Path, workers: int | None) -> _Plan:
    """Mode (a): levels measured here, lists drawn from the corpus manifest with the seed."""
    manifest = read_manifest(corpus_dir)
    lists = {}  # drawn first: a split too small for its count fails before any audio is read
    for index, split in enumerate(SPLITS):
        rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(index,)))  # one stream per split
        lists[split] = draw_mix_list(manifest, split, getattr(cfg.counts, split), cfg.n_speakers,
                                     cfg.max_gain_db, rng)
    files = [corpus_dir / p for p in manifest["path"]]
    log.info("measuring the P.56 active level of %d utterances", len(files))
    levels = parallel_map(_measure_level_job, [(f, rate) for f in files], "levels", workers)
    columns = ["speaker", *(c for c in SPEAKER_ATTRIBUTES if c in manifest.columns)]
    attributes = {row["path"]: {c: row[c] for c in columns} for row in manifest.to_dict("records")}
    return _Plan(lists=lists, levels=dict(zip(manifest["path"].map(utterance_id), levels)), root=corpus_dir,
                 reader=read_corpus_source, table_name="activlev_corpus", attributes=attributes)


def _measure_level_job(job: tuple[Path, int]) -> float:
    return measure_level(*job)


def _official_plan(cfg: MixConfig) -> _Plan:
    """Mode (b): the official lists and precomputed levels, audio from the user's WSJ0."""
    assert cfg.official_lists and cfg.official_activlev and cfg.wsj0_root  # validated by MixConfig
    folder = Path(cfg.official_lists)
    lists = {s: read_mix_list(folder / f"mix_{cfg.n_speakers}_spk_{s}.txt", cfg.n_speakers) for s in SPLITS}
    log.info("official lists: mix.counts and mix.seed are not used (%s mixtures)",
             ", ".join(f"{s} {len(lists[s])}" for s in SPLITS))
    levels = read_activlev_tables(cfg.official_activlev)
    missing = sorted({u for entries in lists.values() for e in entries for u in e.utterances} - levels.keys())
    if missing:
        raise MixError(f"{len(missing)} utterance(s) of the lists have no level in {cfg.official_activlev}, "
                       f"e.g. {', '.join(missing[:3])}")
    return _Plan(lists=lists, levels=levels, root=Path(cfg.wsj0_root), reader=read_wsj0_source,
                 table_name="activlev_wsj0")


def read_manifest(corpus_dir: Path) -> pd.DataFrame:
    """The corpus manifest, checked for what mixing relies on (columns, splits, unique ids, held-out tt)."""
    path = Path(corpus_dir) / "manifest.csv"
    if not path.is_file():
        raise MixError(f"corpus manifest not found: {path} (run `dpcl corpus` first)")
    manifest = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise MixError(f"{path} lacks column(s) {', '.join(missing)} (has {', '.join(manifest.columns)})")
    bad = sorted(set(manifest["split"]) - set(SPLITS))
    if bad:
        raise MixError(f"{path}: split must be one of {', '.join(SPLITS)}, got {', '.join(map(repr, bad))}")
    ids = manifest["path"].map(utterance_id)
    duplicated = sorted(set(ids[ids.duplicated()]))
    if duplicated:
        raise MixError(f"{path}: utterance ids (file stems) must be unique, repeated: {', '.join(duplicated[:5])}")
    test = set(manifest.loc[manifest["split"] == "tt", "speaker"])
    seen = set(manifest.loc[manifest["split"] != "tt", "speaker"])
    if test & seen:
        raise MixError(f"{path}: test speakers also appear in tr/cv: {', '.join(sorted(test & seen))}")
    return manifest
