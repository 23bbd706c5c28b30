"""Losses: the low-rank deep clustering loss against the naive affinity form, and the mask losses."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dpcl.losses import (
    deep_clustering_loss,
    fixed_order_mask_loss,
    ibm_source_mags,
    naive_deep_clustering_loss,
    pit_mask_loss,
)

torch.set_num_threads(2)


def random_problem(seed: int, batch: int = 3, n_bins: int = 50, dim: int = 5, n_sources: int = 3):
    g = torch.Generator().manual_seed(seed)
    v = F.normalize(torch.randn(batch, n_bins, dim, generator=g, dtype=torch.float64), dim=-1)
    target = torch.randint(0, n_sources, (batch, n_bins), generator=g)
    weight = torch.rand(batch, n_bins, generator=g, dtype=torch.float64)
    return v, target, weight


@pytest.mark.parametrize("binary", [False, True])
def test_low_rank_equals_naive(binary):
    v, target, weight = random_problem(0)
    if binary:
        weight = (weight > 0.4).double()
    low_rank = deep_clustering_loss(v, target, weight, n_sources=3)
    naive = naive_deep_clustering_loss(v, target, weight, n_sources=3)
    torch.testing.assert_close(low_rank, naive, rtol=1e-12, atol=1e-12)
    assert low_rank > 0


def test_binary_weights_equal_dropping_the_silent_bins():
    v, target, weight = random_problem(1, batch=1)
    keep = weight[0] > 0.5
    weighted = deep_clustering_loss(v, target, keep[None].double(), n_sources=3)
    dropped = naive_deep_clustering_loss(v[:, keep], target[:, keep], torch.ones(1, int(keep.sum())), n_sources=3)
    torch.testing.assert_close(weighted, dropped.double(), rtol=1e-12, atol=1e-12)


def test_invariant_to_permuting_source_labels():
    v, target, weight = random_problem(2)
    relabel = torch.tensor([2, 0, 1])
    torch.testing.assert_close(deep_clustering_loss(v, target, weight, 3),
                               deep_clustering_loss(v, relabel[target], weight, 3), rtol=1e-12, atol=1e-12)


def test_zero_for_perfect_embeddings():
    _, target, weight = random_problem(3)
    v = F.one_hot(target, 5).double()  # D = 5 > C = 3: one-hot rows padded with zeros
    assert deep_clustering_loss(v, target, weight, n_sources=3).abs() < 1e-12


def test_normalisation_makes_loss_independent_of_length_and_weight_scale():
    v, target, weight = random_problem(4)
    base = deep_clustering_loss(v, target, weight, 3)
    tiled = deep_clustering_loss(v.repeat(1, 4, 1), target.repeat(1, 4), weight.repeat(1, 4), 3)
    torch.testing.assert_close(tiled, base, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(deep_clustering_loss(v, target, 7.0 * weight, 3), base, rtol=1e-12, atol=1e-12)


def test_n_sources_is_an_argument_not_inferred():
    v, target, weight = random_problem(5)
    only_two = target.clamp(max=1)  # the data holds 2 of the 3 sources
    torch.testing.assert_close(deep_clustering_loss(v, only_two, weight, 3),
                               naive_deep_clustering_loss(v, only_two, weight, 3), rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError):
        deep_clustering_loss(v, target, weight, n_sources=2)  # index 2 is out of range


def test_all_silent_utterance_contributes_zero():
    v, target, weight = random_problem(6, batch=2)
    weight[1] = 0
    loss = deep_clustering_loss(v, target, weight, 3)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, deep_clustering_loss(v[:1], target[:1], weight[:1], 3) / 2)


def test_shape_errors_name_the_shapes():
    v, target, weight = random_problem(7)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        deep_clustering_loss(v, target[:, :-1], weight, 3)
    with pytest.raises(ValueError, match="integer"):
        deep_clustering_loss(v, target.double(), weight, 3)


# ---- mask losses -------------------------------------------------------------------------------

def mask_problem(seed: int, n_sources: int = 2, batch: int = 4):
    g = torch.Generator().manual_seed(seed)
    sources = torch.rand(batch, n_sources, 6, 5, generator=g, dtype=torch.float64)  # (B, C, T, F)
    mixture = sources.sum(1)  # (B, T, F)
    masks = torch.rand(batch, 6, 5, n_sources, generator=g, dtype=torch.float64)  # (B, T, F, C)
    weight = (torch.rand(batch, 6, 5, generator=g) > 0.2).double()
    return masks, mixture, sources, weight


@pytest.mark.parametrize("n_sources", [2, 3])
def test_pit_is_at_most_fixed_order_and_invariant_to_swapping_sources(n_sources):
    masks, mixture, sources, weight = mask_problem(0, n_sources)
    fixed = fixed_order_mask_loss(masks, mixture, sources, weight)
    pit, perm = pit_mask_loss(masks, mixture, sources, weight)
    assert pit <= fixed
    shuffle = torch.roll(torch.arange(n_sources), 1)
    pit_swapped, perm_swapped = pit_mask_loss(masks, mixture, sources[:, shuffle], weight)
    torch.testing.assert_close(pit_swapped, pit, rtol=1e-12, atol=1e-12)
    assert torch.equal(shuffle[perm_swapped], perm)  # the same pairing, seen through the relabelling


def test_pit_equals_fixed_order_when_targets_are_in_order():
    masks, mixture, sources, weight = mask_problem(1)
    ordered = sources / mixture.unsqueeze(1)  # ideal ratio masks, in the sources' order
    noisy = (ordered.movedim(1, -1) + 0.05 * masks).clamp(0, 1)  # (B, T, F, C): close to the right order
    pit, perm = pit_mask_loss(noisy, mixture, sources, weight)
    torch.testing.assert_close(pit, fixed_order_mask_loss(noisy, mixture, sources, weight))
    assert torch.equal(perm, torch.arange(2).expand(4, 2))
    assert fixed_order_mask_loss(ordered.movedim(1, -1), mixture, sources, weight) < 1e-24


def test_pit_recovers_swapped_order_per_utterance():
    masks, mixture, sources, weight = mask_problem(2)
    ideal = (sources / mixture.unsqueeze(1)).movedim(1, -1)  # (B, T, F, C)
    ideal[::2] = ideal[::2].flip(-1)  # utterances 0 and 2 answer in the other order
    pit, perm = pit_mask_loss(ideal, mixture, sources, weight)
    assert pit < 1e-24
    assert perm.tolist() == [[1, 0], [0, 1], [1, 0], [0, 1]]
    assert fixed_order_mask_loss(ideal, mixture, sources, weight) > 0.1


def test_ibm_sources_and_gradients():
    masks, mixture, _, weight = mask_problem(3)
    target = torch.randint(0, 2, mixture.shape)
    refs = ibm_source_mags(mixture, target, n_sources=2)  # (B, C, T, F)
    torch.testing.assert_close(refs.sum(1), mixture)
    ibm = F.one_hot(target, 2).double()  # (B, T, F, C)
    assert fixed_order_mask_loss(ibm, mixture, refs, weight) == 0
    masks.requires_grad_(True)
    pit_mask_loss(masks, mixture, refs, weight)[0].backward()
    assert masks.grad.abs().sum() > 0


def test_mask_loss_shape_error():
    masks, mixture, sources, _ = mask_problem(4)
    with pytest.raises(ValueError, match=r"source_mags must be \(B, C, T, F\)"):
        fixed_order_mask_loss(masks, mixture, sources.movedim(1, -1))
