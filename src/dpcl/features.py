"""Stage `features`: log-magnitude spectrograms, ideal-binary-mask targets and silence weights.

One HDF5 file per split holds every utterance's frames back to back, so a training loop can
read any 100- or 400-frame chunk of any utterance without loading the split into memory:

    logmag   (N, F) float32  natural log of |STFT(mix)|, floored; NOT normalised
    target   (N, F) uint8    index of the dominant source per bin (the ideal binary mask)
    weight   (N, F) uint8    1 where the bin is within `silence_db` of the utterance's loudest bin
    offsets  (U + 1,) int64  utterance u owns frames offsets[u]:offsets[u+1]
    names    (U,) str        mixture file names, in the order of mixtures.csv

Normalisation statistics (per-bin mean and standard deviation of `logmag`) come from the
training split only and are stored in stats.json; readers apply them, so a change of
statistics never requires rewriting the spectrograms.
"""

from __future__ import annotations

import contextlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from dpcl.atomic import atomic_dir, write_json
from dpcl.audio import AudioError, read_audio
from dpcl.config import FeaturesConfig, Params
from dpcl.stft import Stft

SPLITS = ("tr", "cv", "tt")
H5_CHUNK_FRAMES = 256
PARALLEL_MIN_JOBS = 200


@dataclass(frozen=True)
class UtteranceFeatures:
    """Features of one mixture; every array is (T, F), time-major."""

    logmag: np.ndarray
    target: np.ndarray
    weight: np.ndarray


def compute_features(mix: np.ndarray, sources: list[np.ndarray], stft: Stft, cfg: FeaturesConfig) -> UtteranceFeatures:
    """Features of one mixture from its waveform and its (equal-length) source waveforms."""
    mix_mag = np.abs(stft.analyse(mix))  # (T, F)
    source_mags = np.stack([np.abs(stft.analyse(s)) for s in sources])  # (C, T, F)
    logmag = log_magnitude(mix_mag, cfg.log_floor)
    target = np.argmax(source_mags, axis=0).astype(np.uint8)
    weight = silence_weights(mix_mag, cfg.silence_db)
    return UtteranceFeatures(logmag=logmag, target=target, weight=weight)


def log_magnitude(magnitude: np.ndarray, floor: float) -> np.ndarray:
    """The network's input before normalisation: natural log of the floored magnitude, float32.

    Shared by training features and separation, so both see exactly the same numbers."""
    return np.log(np.maximum(magnitude, floor)).astype(np.float32)


def silence_weights(magnitude: np.ndarray, silence_db: float) -> np.ndarray:
    """1 for bins within `silence_db` of the loudest bin, else 0 (DPCL's loss ignores those).

    Relative to the utterance's own maximum so the rule is invariant to the mixture's gain.
    """
    peak = float(magnitude.max())
    if peak <= 0.0:
        return np.zeros(magnitude.shape, dtype=np.uint8)
    threshold = peak * 10.0 ** (-silence_db / 20.0)
    return (magnitude >= threshold).astype(np.uint8)


def mixture_names(mix_dir: Path, mode: str, split: str) -> list[str]:
    """Mixture file names of one split, in the order the mixer listed them."""
    table = mix_dir / mode / split / "mixtures.csv"
    if not table.is_file():
        raise AudioError(f"{table} not found: run the `mix` stage first (mode {mode!r} must be in mix.modes)")
    names = pd.read_csv(table)["name"].astype(str).tolist()
    if not names:
        raise AudioError(f"{table} lists no mixtures")
    return names


def spread_subset(names: list[str], count: int | None) -> list[str]:
    """`count` names evenly spaced over the sorted list (all of them for None or count >= len).

    Why not the first `count`: names begin with the first utterance's speaker, so the first N by
    name are mixtures of one speaker. Evenly spaced picks cover every speaker in proportion, and
    need no seed: `separate` (the spectral method) and `evaluate --limit` pick the same names.
    """
    ordered = sorted(names)
    if count is None or count >= len(ordered):
        return ordered
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    step = len(ordered) / count
    return [ordered[int(i * step)] for i in range(count)]


def _load_and_compute(job: tuple[Path, str, int, int, FeaturesConfig]) -> UtteranceFeatures:
    """Worker: read one mixture and its sources, return its features (runs in a subprocess)."""
    split_dir, name, n_sources, rate, cfg = job
    mix, _ = read_audio(split_dir / "mix" / name, expected_rate=rate)
    sources = [read_audio(split_dir / f"s{i + 1}" / name, expected_rate=rate)[0] for i in range(n_sources)]
    for i, source in enumerate(sources):
        if len(source) != len(mix):
            raise AudioError(f"{split_dir / f's{i + 1}' / name} has {len(source)} samples, the mixture {len(mix)}")
    return compute_features(mix, sources, Stft.from_config(cfg), cfg)


def write_split(mix_dir: Path, out_path: Path, params: Params, split: str, workers: int) -> "RunningStats":
    """Compute one split's features into `out_path` (HDF5); returns the statistics of its frames."""
    cfg = params.features
    names = mixture_names(mix_dir, cfg.mode, split)
    split_dir = mix_dir / cfg.mode / split
    jobs = [(split_dir, name, params.mix.n_speakers, params.corpus.sample_rate, cfg) for name in names]
    stats = RunningStats(cfg.n_bins)
    n_bins = cfg.n_bins
    # Worker processes cost ~2 s to start (librosa import); below a few hundred mixtures, serial wins.
    parallel = workers > 1 and len(jobs) >= PARALLEL_MIN_JOBS
    with contextlib.ExitStack() as stack:
        h5 = stack.enter_context(h5py.File(out_path, "w"))
        pool = stack.enter_context(ProcessPoolExecutor(max_workers=workers)) if parallel else None
        logmag = h5.create_dataset("logmag", (0, n_bins), np.float32, maxshape=(None, n_bins),
                                   chunks=(H5_CHUNK_FRAMES, n_bins))
        target = h5.create_dataset("target", (0, n_bins), np.uint8, maxshape=(None, n_bins),
                                   chunks=(H5_CHUNK_FRAMES, n_bins), compression="lzf")
        weight = h5.create_dataset("weight", (0, n_bins), np.uint8, maxshape=(None, n_bins),
                                   chunks=(H5_CHUNK_FRAMES, n_bins), compression="lzf")
        offsets = [0]
        results = pool.map(_load_and_compute, jobs, chunksize=8) if pool else map(_load_and_compute, jobs)
        for features in tqdm(results, total=len(jobs), desc=f"features {split}", unit="mix", mininterval=2):
            start, stop = offsets[-1], offsets[-1] + len(features.logmag)
            for dataset, values in ((logmag, features.logmag), (target, features.target), (weight, features.weight)):
                dataset.resize(stop, axis=0)
                dataset[start:stop] = values
            stats.add(features.logmag)
            offsets.append(stop)
        h5.create_dataset("offsets", data=np.asarray(offsets, dtype=np.int64))
        h5.create_dataset("names", data=np.asarray(names, dtype=object), dtype=h5py.string_dtype())
        h5.attrs.update({
            "sample_rate": params.corpus.sample_rate, "n_fft": cfg.n_fft, "hop_length": cfg.hop_length,
            "window": cfg.window, "n_sources": params.mix.n_speakers, "mode": cfg.mode, "split": split,
        })
    return stats


class RunningStats:
    """Per-bin mean and variance accumulated over frames in float64 (exact, order-independent)."""

    def __init__(self, n_bins: int) -> None:
        self.count = 0
        self.total = np.zeros(n_bins)
        self.total_sq = np.zeros(n_bins)

    def add(self, frames: np.ndarray) -> None:
        frames = frames.astype(np.float64)  # (T, F)
        self.count += len(frames)
        self.total += frames.sum(axis=0)
        self.total_sq += np.square(frames).sum(axis=0)

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        mean = self.total / self.count
        var = np.maximum(self.total_sq / self.count - mean**2, 0.0)
        return mean, np.sqrt(var) + 1e-5  # floor keeps constant bins (digital silence) finite


def run_features(params: Params, mix_dir: Path, out_dir: Path, workers: int | None = None) -> dict:
    """The stage: every split to HDF5, training statistics to stats.json, counts to summary.json."""
    workers = workers or os.cpu_count() or 1
    summary: dict[str, dict] = {}
    with atomic_dir(out_dir) as staging:
        for split in SPLITS:
            stats = write_split(mix_dir, staging / f"{split}.h5", params, split, workers)
            summary[split] = {"frames": stats.count, "mixtures": len(mixture_names(mix_dir, params.features.mode, split))}
            if split == "tr":
                mean, std = stats.mean_std()
                write_json(staging / "stats.json", {"mean": mean.tolist(), "std": std.tolist(), "frames": stats.count})
        write_json(staging / "summary.json", summary)
    return summary


class FeatureStore:
    """Read-only access to one split's HDF5 features, normalised with the training statistics."""

    def __init__(self, h5_path: Path, stats_path: Path) -> None:
        self.path = Path(h5_path)
        self._h5 = h5py.File(self.path, "r")
        self.offsets = self._h5["offsets"][:]
        self.names = [n.decode() if isinstance(n, bytes) else str(n) for n in self._h5["names"][:]]
        stats = json.loads(Path(stats_path).read_text())
        self.mean = np.asarray(stats["mean"], dtype=np.float32)
        self.std = np.asarray(stats["std"], dtype=np.float32)

    def __len__(self) -> int:
        return len(self.names)

    def n_frames(self, index: int) -> int:
        return int(self.offsets[index + 1] - self.offsets[index])

    def read(self, index: int, start: int = 0, stop: int | None = None) -> UtteranceFeatures:
        """Frames [start, stop) of utterance `index`, `logmag` normalised."""
        begin = int(self.offsets[index])
        end = int(self.offsets[index + 1])
        lo, hi = begin + start, min(end, begin + (stop if stop is not None else end - begin))
        logmag = (self._h5["logmag"][lo:hi] - self.mean) / self.std
        return UtteranceFeatures(logmag=logmag, target=self._h5["target"][lo:hi], weight=self._h5["weight"][lo:hi])

    def __iter__(self) -> Iterator[UtteranceFeatures]:
        for index in range(len(self)):
            yield self.read(index)

    def close(self) -> None:
        self._h5.close()
