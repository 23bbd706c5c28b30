"""Fixed-length training chunks streamed from the feature store (DPCL++ curriculum: 100, then 400 frames).

Each utterance is cut into consecutive, non-overlapping chunks of `chunk_frames`; a tail
shorter than half a chunk is dropped, a longer one (and an utterance shorter than a chunk) is
padded with weight 0 so it adds nothing to any loss. Chunks are read from HDF5 on demand, so
memory stays flat whatever the size of the training set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dpcl.features import FeatureStore


class ChunkDataset(Dataset):
    """(logmag, mixture_mag, target, weight) chunks, each (T, F), from one split's feature file."""

    def __init__(self, h5_path: Path, stats_path: Path, chunk_frames: int) -> None:
        self.h5_path, self.stats_path, self.chunk_frames = Path(h5_path), Path(stats_path), chunk_frames
        store = FeatureStore(self.h5_path, self.stats_path)
        self.index: list[tuple[int, int]] = []  # (utterance, first frame)
        for utt in range(len(store)):
            n = store.n_frames(utt)
            starts = list(range(0, max(n - chunk_frames // 2, 1), chunk_frames))
            self.index.extend((utt, start) for start in starts)
        store.close()
        self._store: FeatureStore | None = None  # opened lazily: one handle per DataLoader worker

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        if self._store is None:
            self._store = FeatureStore(self.h5_path, self.stats_path)
        utt, start = self.index[item]
        feats = self._store.read(utt, start, start + self.chunk_frames)
        n, n_bins = feats.logmag.shape
        logmag = np.zeros((self.chunk_frames, n_bins), np.float32)  # (T, F), zero-padded
        mixture_mag = np.zeros((self.chunk_frames, n_bins), np.float32)
        target = np.zeros((self.chunk_frames, n_bins), np.int64)
        weight = np.zeros((self.chunk_frames, n_bins), np.float32)
        logmag[:n], target[:n], weight[:n] = feats.logmag, feats.target, feats.weight
        # Linear magnitude for mask losses: undo the normalisation, then the log.
        mixture_mag[:n] = np.exp(feats.logmag * self._store.std + self._store.mean)
        return {"logmag": torch.from_numpy(logmag), "mixture_mag": torch.from_numpy(mixture_mag),
                "target": torch.from_numpy(target), "weight": torch.from_numpy(weight)}
