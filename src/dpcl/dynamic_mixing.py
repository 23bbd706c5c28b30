"""Dynamic mixing: a fresh two-speaker mixture for every training example of every epoch.

Why: the fixed `tr` list pairs each utterance with a handful of partners; with few speakers the
network memorises those pairs. Drawing new pairs, gains and crops every epoch is worth +0.7 to
+2 dB elsewhere (DESIGN.md section 9), most where clean sources are few, as here.

The recipe is the `mix` stage's (DESIGN.md section 4), per example:

1. Pick the pair: with probability `real_pair_share` both sources are real voices, otherwise the
   first is synthetic (when the corpus has synthetic voices). A source is drawn speaker-first
   (speaker uniformly, then one of its `tr` utterances), so prolific characters do not dominate;
   the second source comes from another speaker *group*: never two clips of one person, nor of
   two characters one actor may have voiced (corpus/split.py).
2. Augment each source (augment.py: speed, tilt, telephone band), then measure its P.56 active
   level on the whole utterance and scale it to unit level times 10^(g/20), with gains +x/-x dB,
   x ~ U[0, mix.max_gain_db].
3. Crop: a random window of the chunk's length from a longer source, a random offset (zero
   padding around it) for a shorter one. Sum, scale mixture and sources by one common factor
   to the peak `mix.peak`, then by the random overall level of the augmentation.
4. Features exactly as the `features` stage computes them (STFT, log magnitude, ideal binary
   mask, silence weights), normalised with the fixed training statistics.

Every random choice of example i in epoch e of phase p comes from a generator seeded with
(seed, p, e, i) alone: a run repeats exactly, a resumed run continues exactly, and the batch
order of the training loop does not change what an example holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from dpcl.activlev import active_level
from dpcl.audio import read_audio
from dpcl.augment import Augmented, augment_source, perturbed_speaker
from dpcl.config import DynamicMixingConfig, FeaturesConfig
from dpcl.errors import DpclError
from dpcl.features import compute_features
from dpcl.stft import Stft

GROUP_DRAWS = 100  # tries to find a partner of another group before the pool is judged too narrow


class DynamicMixError(DpclError, ValueError):
    """The training utterances cannot give what dynamic mixing needs."""


@dataclass(frozen=True)
class UtterancePool:
    """The `tr` utterances of a corpus, in memory (float32), with what pairing needs to know."""

    samples: tuple[np.ndarray, ...]
    speakers: tuple[str, ...]
    groups: tuple[str, ...]
    real: tuple[bool, ...]
    rate: int

    @classmethod
    def from_corpus(cls, corpus_dir: Path, rate: int, split: str = "tr") -> "UtterancePool":
        """Read every utterance of `split` listed in the corpus manifest."""
        manifest_path = Path(corpus_dir) / "manifest.csv"
        if not manifest_path.is_file():
            raise DynamicMixError(f"{manifest_path} not found: dynamic mixing reads the corpus (run `dpcl corpus`)")
        manifest = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
        rows = manifest[manifest["split"] == split].sort_values("path", kind="stable")
        if rows.empty:
            raise DynamicMixError(f"{manifest_path} lists no {split!r} utterances")
        groups = rows["group"] if "group" in rows else rows["speaker"]
        kinds = rows["kind"] if "kind" in rows else pd.Series("real", index=rows.index)
        samples = tuple(read_audio(Path(corpus_dir) / p, expected_rate=rate)[0].astype(np.float32)
                        for p in rows["path"])
        return cls(samples, tuple(rows["speaker"]), tuple(groups), tuple(k == "real" for k in kinds), rate)

    def __post_init__(self) -> None:
        if len(set(self.groups)) < 2:
            raise DynamicMixError(f"dynamic mixing needs utterances of at least 2 speaker groups, got "
                                  f"{sorted(set(self.groups))}")


@dataclass(frozen=True)
class DrawnSource:
    """What one source of a drawn mixture is (for tests and logs)."""

    utterance: int
    speaker: str
    group: str
    gain_db: float
    level: float
    speed: float


class DynamicMixDataset(Dataset):
    """`length` freshly mixed chunks per epoch; `set_epoch(phase, epoch)` chooses which ones.

    Items are the same dict as `chunks.ChunkDataset` (logmag, mixture_mag, target, weight, each
    (T, F)), so the training loop and the objectives do not know which dataset they train on.
    """

    def __init__(self, pool: UtterancePool, length: int, chunk_frames: int, cfg: DynamicMixingConfig,
                 features: FeaturesConfig, stats: tuple[np.ndarray, np.ndarray], max_gain_db: float,
                 peak: float, seed: int) -> None:
        if length < 1:
            raise DynamicMixError(f"an epoch of dynamic mixing needs at least one example, got {length}")
        self.pool, self.length, self.chunk_frames, self.cfg = pool, length, chunk_frames, cfg
        self.features, self.stft = features, Stft.from_config(features)
        self.mean, self.std = (np.asarray(a, dtype=np.float32) for a in stats)
        self.max_gain_db, self.peak, self.seed = max_gain_db, peak, seed
        self.phase, self.epoch = 0, 0
        self.n_samples = (chunk_frames - 1) * features.hop_length  # centred STFT: exactly chunk_frames frames
        self._by_speaker: dict[str, list[int]] = {}
        for index, speaker in enumerate(pool.speakers):
            self._by_speaker.setdefault(speaker, []).append(index)
        self._real_speakers = sorted(s for s, idx in self._by_speaker.items() if pool.real[idx[0]])
        self._synthetic_speakers = sorted(s for s, idx in self._by_speaker.items() if not pool.real[idx[0]])
        self._all_speakers = sorted(self._by_speaker)
        self._real_groups = len({pool.groups[self._by_speaker[s][0]] for s in self._real_speakers})
        self._levels: dict[int, float] = {}

    def set_epoch(self, phase: int, epoch: int) -> None:
        """Called by the training loop before each epoch: the epoch's mixtures are new ones."""
        self.phase, self.epoch = phase, epoch

    def __len__(self) -> int:
        return self.length

    def rng(self, item: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.phase, self.epoch, item])

    def draw(self, item: int) -> tuple[np.ndarray, np.ndarray, list[DrawnSource]]:
        """Mixture (n,), sources (2, n) and what was drawn for example `item` of this epoch."""
        rng = self.rng(item)
        real_pair = not self._synthetic_speakers or (self._real_groups >= 2 and rng.random() < self.cfg.real_pair_share)
        first_pool = self._real_speakers if real_pair else (self._synthetic_speakers or self._all_speakers)
        second_pool = self._real_speakers if real_pair else self._all_speakers
        first = self._pick(first_pool, rng)
        second = self._pick_other_group(second_pool, self.pool.groups[first], rng)
        x = float(rng.uniform(0.0, self.max_gain_db))
        sources, drawn = [], []
        for utterance, gain in ((first, x), (second, -x)):
            augmented = augment_source(self.pool.samples[utterance].astype(np.float64), self.pool.rate,
                                       self.cfg.augmentation, rng)
            level = self._level(utterance, augmented)
            scaled = augmented.samples * (10.0 ** (gain / 20.0) / math.sqrt(level))
            sources.append(self._crop(scaled, rng))
            drawn.append(DrawnSource(utterance, perturbed_speaker(self.pool.speakers[utterance], augmented.speed),
                                     self.pool.groups[utterance], gain, level, augmented.speed))
        stacked = np.stack(sources)  # (2, n)
        mix = stacked.sum(axis=0)
        top = max(float(np.max(np.abs(mix))), float(np.max(np.abs(stacked))))
        scale = self.peak / top if top > 0 else 1.0
        level_db = self.cfg.augmentation.level_db
        scale *= 10.0 ** (rng.uniform(-level_db, level_db) / 20.0) if level_db else 1.0
        return mix * scale, stacked * scale, drawn

    def _level(self, utterance: int, augmented: Augmented) -> float:
        """P.56 level of the augmented utterance (an untouched one's from the cache)."""
        untouched = augmented.speed == 1.0 and augmented.tilt == 0.0 and not augmented.telephone
        if untouched:
            return self._unaugmented_level(utterance)
        return active_level(augmented.samples, self.pool.rate).level

    def _unaugmented_level(self, utterance: int) -> float:
        """An untouched utterance's level is measured once (half the cost of an example otherwise)
        and kept for the following epochs."""
        if utterance not in self._levels:
            samples = self.pool.samples[utterance].astype(np.float64)  # what draw() hands augment_source
            self._levels[utterance] = active_level(samples, self.pool.rate).level
        return self._levels[utterance]

    def measure_levels(self) -> None:
        """Measure every unaugmented utterance's level now, in this process. DataLoader workers
        start each epoch from a copy of this dataset and would otherwise each measure them again."""
        for utterance in range(len(self.pool.samples)):
            self._unaugmented_level(utterance)

    def _pick(self, speakers: list[str], rng: np.random.Generator) -> int:
        utterances = self._by_speaker[speakers[int(rng.integers(len(speakers)))]]
        return utterances[int(rng.integers(len(utterances)))]

    def _pick_other_group(self, speakers: list[str], group: str, rng: np.random.Generator) -> int:
        for _ in range(GROUP_DRAWS):
            candidate = self._pick(speakers, rng)
            if self.pool.groups[candidate] != group:
                return candidate
        others = [s for s in speakers if self.pool.groups[self._by_speaker[s][0]] != group]
        if not others:
            raise DynamicMixError(f"no training speaker outside group {group!r} to mix with")
        return self._pick(others, rng)

    def _crop(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random window of n_samples, or the whole source at a random offset in zeros."""
        n = self.n_samples
        if len(samples) >= n:
            start = int(rng.integers(len(samples) - n + 1))
            return samples[start:start + n]
        out = np.zeros(n)
        offset = int(rng.integers(n - len(samples) + 1))
        out[offset:offset + len(samples)] = samples
        return out

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        mix, sources, _ = self.draw(item)
        feats = compute_features(mix, list(sources), self.stft, self.features)
        logmag = (feats.logmag - self.mean) / self.std
        mixture_mag = np.exp(feats.logmag).astype(np.float32)
        return {"logmag": torch.from_numpy(np.ascontiguousarray(logmag, dtype=np.float32)),
                "mixture_mag": torch.from_numpy(mixture_mag),
                "target": torch.from_numpy(feats.target.astype(np.int64)),
                "weight": torch.from_numpy(feats.weight.astype(np.float32))}
