"""Training objectives as pure functions: deep clustering, fixed-order and permutation-invariant mask losses.

Shapes: B utterances (or chunks), N = T*F time-frequency bins ordered time-major (n = t*F + f),
D embedding dimensions, C sources. Every loss returns the mean over the batch of a per-utterance
value normalised so that its scale does not depend on the chunk length, the batch size or the
signal level: a learning rate found on 100-frame chunks carries over to 400-frame chunks.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _normalised_weights(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Per-utterance weights scaled to sum to 1 over the bins: (B, N) -> (B, N).

    An utterance whose weights are all 0 stays all 0 (it contributes 0 to the batch mean).
    """
    weight = weight.to(dtype)
    total = weight.sum(dim=1, keepdim=True)  # (B, 1)
    return weight / total.clamp_min(torch.finfo(dtype).tiny)


def _check_dc_inputs(embedding: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, n_sources: int) -> None:
    _check(embedding.dim() == 3, f"embedding must be (B, N, D), got shape {tuple(embedding.shape)}")
    _check(target.shape == embedding.shape[:2] and weight.shape == embedding.shape[:2],
           f"target and weight must be (B, N) = {tuple(embedding.shape[:2])}, "
           f"got {tuple(target.shape)} and {tuple(weight.shape)}")
    _check(not target.is_floating_point(), f"target must hold integer source indices, got {target.dtype}")
    _check(n_sources >= 1, f"n_sources must be >= 1, got {n_sources}")


def deep_clustering_loss(embedding: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                         n_sources: int) -> torch.Tensor:
    """The deep clustering objective in its low-rank form; never forms the N x N affinity.

    Hershey et al. 2016, eq. (3)-(4), with a diagonal bin weighting W = diag(w):

        L = ||W^1/2 (V V^T - Y Y^T) W^1/2||_F^2 = sum_ij w_i w_j (v_i . v_j - y_i . y_j)^2
          = ||V^T W V||_F^2 - 2 ||V^T W Y||_F^2 + ||Y^T W Y||_F^2

    i.e. every row of V and Y is scaled by sqrt(w_i) (computed as W on one side of each product,
    the same value without sqrt's infinite slope at w = 0). A pair of bins counts w_i w_j; with
    binary weights that is exactly the loss over the active bins only. Memory and time O(N D^2).

    Normalisation: each utterance's L is divided by (sum_i w_i)^2, the number of active pairs for
    binary weights, then averaged over the batch. The result is the mean squared affinity error
    over active pairs, in [0, 4] whatever the chunk length; the unnormalised L grows as N^2 (16x
    from 100- to 400-frame chunks) and dividing by sum w only (asteroid) as N, either of which
    would make the learning rate depend on the chunk and the batch. Implemented by scaling each
    utterance's weights to sum to 1, which also keeps the three terms O(1) in float32.

    Args:
        embedding: (B, N, D) embeddings V (unit-norm rows in the model, not required here).
        target: (B, N) integer index of each bin's dominant source, in [0, n_sources).
        weight: (B, N) non-negative bin weights (0: silent bin, ignored).
        n_sources: C, the number of sources; an argument, never inferred from the targets.

    Returns:
        A scalar tensor.

    >>> y = torch.tensor([[0, 1, 1]])
    >>> deep_clustering_loss(F.one_hot(y, 2).float(), y, torch.ones(1, 3), n_sources=2)
    tensor(0.)
    >>> same = torch.tensor([[[1.0, 0.0]] * 3])  # every bin in one cluster: 4 of 9 pairs wrong
    >>> round(deep_clustering_loss(same, y, torch.ones(1, 3), n_sources=2).item(), 4)
    0.4444
    """
    _check_dc_inputs(embedding, target, weight, n_sources)
    y = F.one_hot(target.long(), n_sources).to(embedding.dtype)  # (B, N, C)
    w = _normalised_weights(weight, embedding.dtype).unsqueeze(-1)  # (B, N, 1)
    wv = w * embedding  # (B, N, D): W V
    vwv = wv.transpose(1, 2) @ embedding  # (B, D, D): V^T W V
    vwy = wv.transpose(1, 2) @ y  # (B, D, C): V^T W Y
    ywy = (w * y).sum(dim=1)  # (B, C): Y^T W Y is diagonal (one-hot rows), these are its entries
    per_utterance = vwv.square().sum((1, 2)) - 2 * vwy.square().sum((1, 2)) + ywy.square().sum(1)  # (B,)
    return per_utterance.mean()


def naive_deep_clustering_loss(embedding: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                               n_sources: int) -> torch.Tensor:
    """The same loss as `deep_clustering_loss`, computed from the N x N affinity matrices.

    For tests and the benchmark only: it needs B N^2 memory (0.6 GB per 100-frame utterance,
    10 GB at 400 frames). Same arguments, weighting and normalisation.
    """
    _check_dc_inputs(embedding, target, weight, n_sources)
    y = F.one_hot(target.long(), n_sources).to(embedding.dtype)  # (B, N, C)
    w = _normalised_weights(weight, embedding.dtype)  # (B, N)
    error = embedding @ embedding.transpose(1, 2) - y @ y.transpose(1, 2)  # (B, N, N)
    pair_weight = w.unsqueeze(2) * w.unsqueeze(1)  # (B, N, N)
    return (pair_weight * error.square()).sum((1, 2)).mean()


def ibm_source_mags(mixture_mag: torch.Tensor, target: torch.Tensor, n_sources: int) -> torch.Tensor:
    """Source magnitudes implied by the ideal binary mask: |S_c| = IBM_c |Y|.

    (B, T, F) mixture magnitude and (B, T, F) dominant-source index -> (B, C, T, F). Lets the mask
    losses train from the feature store, which keeps the IBM and not the sources' spectra.
    """
    ibm = F.one_hot(target.long(), n_sources).to(mixture_mag.dtype)  # (B, T, F, C)
    return ibm.movedim(-1, 1) * mixture_mag.unsqueeze(1)  # (B, C, T, F)


def _check_mask_inputs(masks: torch.Tensor, mixture_mag: torch.Tensor, source_mags: torch.Tensor,
                       weight: torch.Tensor | None) -> torch.Tensor:
    """Validate the shapes and return the weight, all ones when None: (B, T, F)."""
    _check(masks.dim() == 4, f"masks must be (B, T, F, C), got shape {tuple(masks.shape)}")
    batch, n_frames, n_bins, n_sources = masks.shape
    _check(mixture_mag.shape == (batch, n_frames, n_bins),
           f"mixture_mag must be (B, T, F) = {(batch, n_frames, n_bins)}, got {tuple(mixture_mag.shape)}")
    _check(source_mags.shape == (batch, n_sources, n_frames, n_bins),
           f"source_mags must be (B, C, T, F) = {(batch, n_sources, n_frames, n_bins)}, "
           f"got {tuple(source_mags.shape)}")
    if weight is None:
        return torch.ones_like(mixture_mag)
    _check(weight.shape == mixture_mag.shape, f"weight must be (B, T, F), got {tuple(weight.shape)}")
    return weight.to(mixture_mag.dtype)


def _mixture_energy(mixture_mag: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """sum_tf w |Y|^2 per utterance, floored above 0: (B, T, F) -> (B,)."""
    energy = (weight * mixture_mag.square()).sum((1, 2))  # (B,)
    return energy.clamp_min(torch.finfo(energy.dtype).tiny)


def fixed_order_mask_loss(masks: torch.Tensor, mixture_mag: torch.Tensor, source_mags: torch.Tensor,
                          weight: torch.Tensor | None = None) -> torch.Tensor:
    """Magnitude spectrum approximation, mask c against source c (Weninger et al. 2014):

        L = sum_c sum_tf w (M_c |Y| - |S_c|)^2 / sum_tf w |Y|^2,   mean over the batch.

    Why this and not a mask MSE: errors count by the mixture's energy in the bin, so loud bins,
    which decide the SDR, dominate and near-silent bins, whose mask does not matter, cost almost
    nothing; with `ibm_source_mags` targets it is exactly an energy-weighted MSE against the IBM.
    Dividing by the mixture energy makes it a relative error (all-zero masks score about 1),
    independent of the signal level and the chunk length.

    Args:
        masks: (B, T, F, C) estimated masks.
        mixture_mag: (B, T, F) linear mixture magnitude |Y| (not the normalised log).
        source_mags: (B, C, T, F) reference source magnitudes |S_c| (or `ibm_source_mags`).
        weight: (B, T, F) optional non-negative bin weights; None weights every bin 1.

    Returns:
        A scalar tensor.

    >>> mix = torch.ones(1, 1, 2)
    >>> refs = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2): one bin each
    >>> fixed_order_mask_loss(refs.movedim(1, -1), mix, refs)  # the ideal masks
    tensor(0.)
    >>> fixed_order_mask_loss(refs.flip(1).movedim(1, -1), mix, refs)  # speakers swapped
    tensor(2.)
    """
    weight = _check_mask_inputs(masks, mixture_mag, source_mags, weight)
    estimates = masks.movedim(-1, 1) * mixture_mag.unsqueeze(1)  # (B, C, T, F)
    error = (weight.unsqueeze(1) * (estimates - source_mags).square()).sum((1, 2, 3))  # (B,)
    return (error / _mixture_energy(mixture_mag, weight)).mean()


def pit_mask_loss(masks: torch.Tensor, mixture_mag: torch.Tensor, source_mags: torch.Tensor,
                  weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Utterance-level permutation-invariant `fixed_order_mask_loss` (Kolbaek et al. 2017):

        L = min over permutations pi of sum_c sum_tf w (M_c |Y| - |S_pi(c)|)^2 / sum_tf w |Y|^2

    per utterance, then the batch mean. The C x C pairwise errors are computed once for the whole
    batch; the C! candidates (6 for C = 3) are a gather over them, with no loop over the batch.

    Returns:
        (loss, perm): the scalar loss and perm (B, C) int64, where perm[b, c] is the reference
        source matched to mask c, so `source_mags[b, perm[b]]` is in the masks' order.

    >>> mix = torch.ones(1, 1, 2)
    >>> refs = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    >>> pit_mask_loss(refs.flip(1).movedim(1, -1), mix, refs)  # speakers swapped: no cost
    (tensor(0.), tensor([[1, 0]]))
    """
    weight = _check_mask_inputs(masks, mixture_mag, source_mags, weight)
    n_sources = masks.shape[-1]
    estimates = masks.movedim(-1, 1) * mixture_mag.unsqueeze(1)  # (B, C, T, F)
    diff = estimates.unsqueeze(2) - source_mags.unsqueeze(1)  # (B, C_est, C_ref, T, F)
    pair_error = (weight[:, None, None] * diff.square()).sum((3, 4))  # (B, C_est, C_ref)
    pair_error = pair_error / _mixture_energy(mixture_mag, weight)[:, None, None]
    perms = torch.tensor(list(itertools.permutations(range(n_sources))), device=masks.device)  # (P, C)
    est_index = torch.arange(n_sources, device=masks.device).expand_as(perms)  # (P, C)
    per_perm = pair_error[:, est_index, perms].sum(-1)  # (B, P)
    loss, best = per_perm.min(dim=1)  # (B,), (B,)
    return loss.mean(), perms[best]  # scalar, (B, C)
