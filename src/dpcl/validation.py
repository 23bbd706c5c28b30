"""Validation SDRi: the quality a DPCL training keeps its best weights by.

Why not the loss alone: DPCL's affinity loss is a proxy for separation, and k-means on the
embeddings decides what a listener hears. A small fixed set of `cv` mixtures (evenly spread
over the names, the same every epoch and every run) is separated exactly as `dpcl separate`
does it (k-means with the model's separate settings, masks, inverse STFT) and scored with
fast_bss_eval's numpy backend; 20 mixtures of 2-6 s cost a few seconds per epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from dpcl.audio import read_audio
from dpcl.config import Params
from dpcl.evaluate import score_mixture
from dpcl.features import mixture_names, spread_subset
from dpcl.masks import apply_masks, kmeans_masks
from dpcl.separate import log_magnitude, oracle_separation
from dpcl.stft import Stft


class SdriScorer:
    """`scorer(model)` -> mean SDRi (dB) of the DPCL `model` on a fixed subset of `cv` (or `split`)."""

    def __init__(self, params: Params, mix_dir: Path, stats: tuple[np.ndarray, np.ndarray], count: int,
                 split: str = "cv") -> None:
        self.params, self.stft = params, Stft.from_config(params.features)
        self.mean, self.std = (np.asarray(a, dtype=np.float32) for a in stats)
        split_dir = Path(mix_dir) / params.features.mode / split
        rate, n = params.corpus.sample_rate, params.mix.n_speakers
        self.items = []
        for name in spread_subset(mixture_names(Path(mix_dir), params.features.mode, split), count):
            mix = read_audio(split_dir / "mix" / name, expected_rate=rate)[0]
            sources = np.stack([read_audio(split_dir / f"s{i + 1}" / name, expected_rate=rate)[0] for i in range(n)])
            spec, logmag, active = log_magnitude(mix, self.stft, params.features)
            self.items.append((mix, sources, spec, (logmag - self.mean) / self.std, active))

    def __call__(self, model: nn.Module) -> float:
        cfg, n = self.params.separate, self.params.mix.n_speakers
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        scores = []
        with torch.inference_mode():
            for mix, sources, spec, logmag, active in self.items:
                embeddings = model(torch.from_numpy(logmag)[None].to(device))[0].float().cpu().numpy()
                masks = kmeans_masks(embeddings, active, n, cfg.seed, cfg.n_init, silent_bins=cfg.silent_bins,
                                     soft=cfg.soft, alpha=cfg.soft_alpha,
                                     magnitude=np.abs(spec) if cfg.silent_bins == "louder" else None)
                estimates = apply_masks(spec, masks, self.stft, len(mix))
                scores.append(score_mixture(mix, sources, estimates, self.params.corpus.sample_rate, "fast")["sdri"])
        model.train(was_training)
        return float(np.mean(scores))

    def ibm(self) -> float:
        """Mean SDRi of the ideal binary mask on the same mixtures: the ceiling a share is taken of."""
        rate = self.params.corpus.sample_rate
        scores = [score_mixture(mix, sources, oracle_separation(mix, list(sources), "ibm", self.stft,
                                                                self.params.features).estimates, rate, "fast")["sdri"]
                  for mix, sources, *_ in self.items]
        return float(np.mean(scores))
