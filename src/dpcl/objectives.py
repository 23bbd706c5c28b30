"""What a training step minimises, per kind of model: batch in, scalar loss out.

The training loop knows nothing of models or losses; it calls `objective(model, batch)`.
A batch holds (B, T, F) tensors from `ChunkDataset`: normalised `logmag`, linear
`mixture_mag`, `target` (dominant source per bin) and `weight` (0 for silent or padded bins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from dpcl.losses import deep_clustering_loss, fixed_order_mask_loss, ibm_source_mags, pit_mask_loss


@dataclass(frozen=True)
class DeepClusteringObjective:
    """||VV^T - YY^T||_F^2 in its low-rank form, silent bins weighted out (DESIGN.md section 3).

    `weights`: `binary` weighs every active bin 1 (the paper); `magnitude` weighs an active bin
    by the mixture's magnitude there (Wang et al. 2018): the bins that carry the energy, and so
    decide the SDR, dominate the loss. The loss normalises each utterance's weights to sum 1, so
    the scale of the magnitudes does not matter.
    """

    n_sources: int
    weights: Literal["binary", "magnitude"] = "binary"

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        embedding = model(batch["logmag"])  # (B, T*F, D), bins time-major
        batch_size = embedding.shape[0]
        target = batch["target"].reshape(batch_size, -1)  # (B, T*F), same time-major order
        weight = batch["weight"]  # (B, T, F): 1 active, 0 silent or padding
        if self.weights == "magnitude":
            weight = weight * batch["mixture_mag"]
        return deep_clustering_loss(embedding, target, weight.reshape(batch_size, -1), self.n_sources)


@dataclass(frozen=True)
class MaskObjective:
    """Magnitude-domain mask error against the ideal binary mask's source estimates.

    `fixed`: mask c must match source c (s1, s2 as listed: the permutation problem shows).
    `pit`: the best of all source orders per utterance (permutation-invariant training).
    """

    n_sources: int
    order: Literal["fixed", "pit"]

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        masks = model(batch["logmag"])  # (B, T, F, C)
        mixture_mag = batch["mixture_mag"]  # (B, T, F)
        source_mags = ibm_source_mags(mixture_mag, batch["target"], self.n_sources)  # (B, C, T, F)
        if self.order == "fixed":
            return fixed_order_mask_loss(masks, mixture_mag, source_mags, batch["weight"])
        loss, _ = pit_mask_loss(masks, mixture_mag, source_mags, batch["weight"])
        return loss
