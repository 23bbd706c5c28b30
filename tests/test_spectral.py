"""Classical spectral clustering and the low-rank DPCL route (dpcl.spectral), the stage and the cost run.

Signals are built here: two noise sources in disjoint frequency bands, which spectral clustering
of log-magnitude bins with their frequency position must pull apart; and two-cluster
embeddings like a trained DPCL network's, for the low-rank equivalence.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import mir_eval.separation
import numpy as np
import pandas as pd
import pytest
import scipy.signal
import torch

from dpcl.audio import AudioError, write_wav
from dpcl.config import SpectralConfig, params_from_dict
from dpcl.cost_growth import growth_exponents, measure_growth, peak_memory, run_cost, segment_scores
from dpcl.errors import DpclError
from dpcl.evaluate import evaluate_folder
from dpcl.masks import kmeans_masks
from dpcl.separate import SpectralSeparator, run_separate
from dpcl.spectral import (AffinityTooLarge, bin_features, dense_affinity, dense_low_rank_affinity, knn_affinity,
                           low_rank_njw_embedding, njw_embedding, spectral_rows)

from test_separate import models, one_torch_thread, tiny_params  # noqa: F401 (fixtures)

RATE = 8000
ROOT = Path(__file__).resolve().parents[1]


def band_noise(n: int, low: float, high: float, seed: int) -> np.ndarray:
    """White noise band-passed to [low, high] Hz (8th-order Butterworth), 0.2 RMS."""
    noise = np.random.default_rng(seed).standard_normal(n)
    sos = scipy.signal.butter(8, [low, high], btype="bandpass", fs=RATE, output="sos")
    band = scipy.signal.sosfilt(sos, noise)
    return 0.2 * band / np.sqrt(np.mean(band**2))


def disjoint_bands(seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(mix, sources (2, n)): one source below 1 kHz, the other above 2.5 kHz."""
    n = int(seconds * RATE)
    sources = np.stack([band_noise(n, 150.0, 1000.0, 1), band_noise(n, 2500.0, 3800.0, 2)])
    return sources.sum(axis=0), sources


def sdr(refs: np.ndarray, ests: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return mir_eval.separation.bss_eval_sources(refs, ests)[0]


def projector(rows: np.ndarray) -> np.ndarray:
    """Orthogonal projector onto the column span of `rows` (N, K): invariant to sign and rotation."""
    q, _ = np.linalg.qr(rows)
    return q @ q.T


def two_blobs(n: int = 300, dim: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    centres = np.stack([np.zeros(dim), np.full(dim, 4.0)])  # 8.9 sigma apart: every point nearest its own centre
    return (centres[labels] + rng.standard_normal((n, dim))).astype(np.float32), labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a, b) or np.array_equal(a, 1 - b))


# --------------------------------------------------------------------------- the algorithm


@pytest.mark.parametrize("affinity", ["dense", "knn"])
def test_spectral_clustering_recovers_sources_in_disjoint_bands(affinity: str) -> None:
    mix, sources = disjoint_bands(1.0)
    params = tiny_params(spectral={"affinity": affinity})
    result = SpectralSeparator(params).run(mix, RATE)
    scores = sdr(sources, result.estimates)
    # Both bands recovered: measured 43 dB (knn) and 38-40 dB (dense); a partition that puts both
    # sources' loud bins in one cluster (loud against quiet bins) scores about 0 dB.
    assert scores.min() > 20.0, scores
    masks = result.masks
    assert masks.shape[0] == 2 and set(np.unique(masks)) <= {0.0, 1.0}
    assert np.all(masks.sum(axis=0)[result.active] == 1.0)  # active bins: exactly one source


def test_dense_and_knn_affinities_give_the_same_partition() -> None:
    points, labels = two_blobs()
    dense_rows = njw_embedding(dense_affinity(points, width=1.5, max_gib=1.0), 2, seed=0)
    knn_rows = njw_embedding(knn_affinity(points, n_neighbors=10, width=1.5), 2, seed=0)
    mask = np.ones((len(points), 1), dtype=bool)
    dense_labels = kmeans_masks(dense_rows, mask, 2, n_init=3)[:, :, 0].argmax(axis=0)
    knn_labels = kmeans_masks(knn_rows, mask, 2, n_init=3)[:, :, 0].argmax(axis=0)
    assert same_partition(dense_labels, knn_labels)
    assert same_partition(dense_labels, labels)


def test_low_rank_route_matches_the_dense_affinity() -> None:
    """SVD of [1, V] / sqrt(2) scaled by the degrees == eigenvectors of the dense (1 + VV^T)/2, normalised."""
    rng = np.random.default_rng(0)
    labels = np.arange(400) % 2
    centres = rng.standard_normal((2, 20))
    v = centres[labels] + 0.6 * rng.standard_normal((400, 20))
    v /= np.linalg.norm(v, axis=1, keepdims=True)  # unit norm, as DPCL's
    low_rank = low_rank_njw_embedding(v, 2)
    dense = dense_low_rank_affinity(v)
    degrees = dense.sum(axis=1)
    normalised = dense / np.sqrt(np.outer(degrees, degrees))
    _, vectors = np.linalg.eigh(normalised)
    dense_rows = vectors[:, -2:] / np.linalg.norm(vectors[:, -2:], axis=1, keepdims=True)
    np.testing.assert_allclose(projector(low_rank), projector(dense_rows), atol=1e-8)
    mask = np.ones((400, 1), dtype=bool)
    assert same_partition(kmeans_masks(low_rank, mask, 2)[:, :, 0].argmax(axis=0), labels)


def test_memory_guard_refuses_a_large_dense_affinity() -> None:
    points = np.zeros((20000, 3), dtype=np.float32)  # 1.5 GiB as a dense float32 affinity
    with pytest.raises(AffinityTooLarge, match=r"1\.5 GiB.*spectral\.affinity: knn"):
        dense_affinity(points, width=1.0, max_gib=1.0)
    logmag = np.random.default_rng(0).standard_normal((200, 129))
    cfg = SpectralConfig(affinity="dense", max_dense_gib=0.1)
    with pytest.raises(AffinityTooLarge, match="max_dense_gib = 0.1"):
        spectral_rows(logmag, np.ones_like(logmag, dtype=bool), 2, cfg)
    assert isinstance(AffinityTooLarge("x"), DpclError)  # the CLI prints it as a one-line error


def test_bin_features_shape_and_positions() -> None:
    logmag = np.arange(12.0).reshape(3, 4)
    active = np.zeros((3, 4), dtype=bool)
    active[1, 2] = active[2, 0] = True
    features = bin_features(logmag, active, SpectralConfig(context_frames=1, context_bins=1, time_weight=1.0))
    assert features.shape == (2, 9 + 2)
    without = bin_features(logmag, active, SpectralConfig(context_frames=0, context_bins=0, frequency_weight=0.0))
    assert without.shape == (2, 1) and without[0, 0] < without[1, 0]  # bin (1, 2) = 6 is quieter than (2, 0) = 8


@pytest.mark.parametrize("affinity", ["dense", "knn"])
def test_too_few_active_bins_are_not_clustered(affinity: str) -> None:
    """Digital silence leaves 0 or 1 active bins: rows in njw_embedding's degenerate form, no solver error."""
    logmag, active = np.zeros((5, 129)), np.zeros((5, 129), dtype=bool)
    assert spectral_rows(logmag, active, 2, SpectralConfig(), affinity).shape == (0, 2)
    active[2, 3] = True
    assert spectral_rows(logmag, active, 2, SpectralConfig(), affinity).tolist() == [[1.0, 0.0]]


def test_spectral_params_are_validated() -> None:
    with pytest.raises(DpclError, match="spectral.affinity"):
        params_from_dict({"spectral": {"affinity": "full"}})
    with pytest.raises(DpclError, match="spectral.max_dense_gib"):
        params_from_dict({"spectral": {"max_dense_gib": 0}})
    with pytest.raises(DpclError, match="spectral.kernel_width"):
        params_from_dict({"spectral": {"kernel_width": -1.0}})


# --------------------------------------------------------------------------- the stage and the cost run


@pytest.fixture(scope="module")
def band_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A miniature test split of three disjoint-band mixtures (0.5, 0.75, 1 s)."""
    split = tmp_path_factory.mktemp("mix") / "min" / "tt"
    names = [f"m{i}_0_n{i}_0.wav" for i in range(3)]
    for i, name in enumerate(names):
        mix, sources = disjoint_bands(0.5 + 0.25 * i)
        gain = 0.9 / np.abs(np.vstack([mix, sources])).max()  # one gain for all, as the mixer's: no clipping
        mix, sources = gain * mix, gain * sources
        write_wav(split / "mix" / name, mix, RATE)
        for c, source in enumerate(sources):
            write_wav(split / f"s{c + 1}" / name, source, RATE)
    pd.DataFrame({"name": names}).to_csv(split / "mixtures.csv", index=False)
    return split


def test_stage_separates_the_first_mixtures_and_evaluate_scores_them(tmp_path: Path, band_split: Path,
                                                                     models: dict[str, Path]) -> None:
    params = tiny_params(spectral={"max_mixtures": 2})
    summary = run_separate(params, "spectral", band_split, None, None, tmp_path / "spectral")
    assert summary["mixtures"] == 2
    scores = evaluate_folder(band_split, tmp_path / "spectral", 2, limit=2)
    assert len(scores) == 2 and scores["sdri"].min() > 5.0
    with pytest.raises(DpclError, match="no estimate"):
        evaluate_folder(band_split, tmp_path / "spectral", 2)  # all three: the third has no estimate
    run_separate(params, "dpcl-spectral", band_split, models["dpcl"], models["stats"], tmp_path / "dpcl-spectral")
    assert len(list((tmp_path / "dpcl-spectral" / "s1").iterdir())) == 3


@pytest.fixture(scope="module")
def model_with_stats(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]) -> Path:
    """The tiny DPCL model with its feature statistics inside, as training writes model.pt (the cost
    stage, like the real pipeline, passes no stats.json)."""
    payload = torch.load(models["dpcl"], weights_only=True)
    payload["stats"] = json.loads(models["stats"].read_text())
    path = tmp_path_factory.mktemp("model") / "model.pt"
    torch.save(payload, path)
    return path


def test_cost_run_measures_growth_and_refuses_dense_past_the_budget(tmp_path: Path, band_split: Path,
                                                                   model_with_stats: Path) -> None:
    params = tiny_params(spectral={"cost_lengths_s": [0.25, 0.5, 1.0], "max_dense_gib": 0.2})
    summary = run_cost(params, band_split, model_with_stats, tmp_path / "cost")
    table = pd.read_csv(tmp_path / "cost" / "growth.csv")
    assert set(table["method"]) == {"spectral-dense", "spectral-knn", "dpcl", "dpcl-spectral", "ibm"}
    dense = table[table["method"] == "spectral-dense"].set_index("length_s")
    assert dense.loc[1.0, "refused"].startswith("a dense affinity")  # ~10,000 active bins: 0.4 GiB
    assert np.isfinite(dense.loc[0.25, "seconds"])
    assert (tmp_path / "cost" / "growth.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "cost" / "growth.json").read_text())["exponents"] == summary["exponents"]
    assert "spectral-knn" in summary["exponents"]
    with pytest.raises(DpclError, match="fewer than the 9 s"):
        measure_growth(tiny_params(spectral={"cost_lengths_s": [9.0]}), band_split, None)


def test_benchmark_script_writes_the_cost_rows(tmp_path: Path, band_split: Path) -> None:
    """benchmarks/spectral_cost.py: the same measurement from the command line, a table and JSON."""
    out = tmp_path / "spectral_cost.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "spectral_cost.py"), "--mixtures",
                             str(band_split), "--no-model", "--lengths", "0.25", "0.5", "--out", str(out)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "growth exponents" in result.stdout and "spectral-dense" in result.stdout
    written = json.loads(out.read_text())
    assert {(r["method"], r["length_s"]) for r in written["rows"]} == {
        (m, s) for m in ("spectral-dense", "spectral-knn", "ibm") for s in (0.25, 0.5)}
    assert written["model"] is None and written["spectral"]["cost_lengths_s"] == [0.25, 0.5]
    assert set(written["exponents"]) == {"spectral-dense", "spectral-knn", "ibm"}


def test_growth_exponents_fit_a_power_law() -> None:
    lengths = np.array([1.0, 2.0, 4.0, 8.0])
    table = pd.DataFrame({"method": ["a"] * 4 + ["b"] * 4, "length_s": np.tile(lengths, 2),
                          "seconds": np.concatenate([0.1 * lengths**2, 0.3 * lengths]),
                          "peak_bytes": np.concatenate([1e6 * lengths**2, 1e6 * lengths])})
    exponents = growth_exponents(table)
    assert exponents["a"]["time"] == pytest.approx(2.0) and exponents["b"]["memory"] == pytest.approx(1.0)


def test_peak_memory_sees_a_large_allocation() -> None:
    with peak_memory() as peak:
        block = np.ones(50 * 2**20 // 8)  # 50 MiB
        del block
    assert peak["bytes"] >= 40 * 2**20


def test_peak_memory_resets_between_blocks() -> None:
    """An earlier, larger peak must not leak into a later block's reading."""
    big = np.ones(200 * 2**20 // 8)  # 200 MiB, touched, then freed
    del big
    with peak_memory() as peak:
        small = np.ones(20 * 2**20 // 8)  # 20 MiB
        del small
    assert 15 * 2**20 <= peak["bytes"] < 100 * 2**20


def test_cost_scores_each_concatenated_mixture_with_its_own_permutation() -> None:
    """Two mixtures end to end, separated perfectly but with the speakers' order swapped in the
    second: per segment that is a perfect separation; one permutation over the cut would not be."""
    first = disjoint_bands(1.0)[1]
    second = first[::-1].copy()  # the same two people, listed the other way round
    sources = np.concatenate([first, second], axis=1)
    estimates = np.concatenate([first, second[::-1]], axis=1)  # right in both, labels swapped in the second
    mix = sources.sum(axis=0)
    per_segment = segment_scores(mix, sources, estimates, [0, RATE], RATE, "fast")
    whole = segment_scores(mix, sources, estimates, [0], RATE, "fast")
    assert per_segment["sdri"] > 30.0 and whole["sdri"] < 10.0
    assert segment_scores(mix[:1600], sources[:, :1600], estimates[:, :1600], [0, 900], RATE, "fast")["sdri"] > 30.0


def test_spectral_methods_refuse_silent_bin_settings_they_cannot_honour() -> None:
    """Silent bins have no spectral row: `nearest` would put them all in one source."""
    with pytest.raises(DpclError, match="spectral clustering places active bins only"):
        SpectralSeparator(tiny_params(separate={"silent_bins": "nearest"}))


def test_spectral_soft_masks_weigh_active_bins_and_keep_silent_bins_in_both() -> None:
    """Soft masks need centroid distances of active bins only: they sum to 1 there, and silent bins
    follow `silent_bins: both`."""
    mix, _ = disjoint_bands(1.0)
    result = SpectralSeparator(tiny_params(separate={"soft": True, "silent_bins": "both"})).run(mix, RATE)
    active = result.active
    np.testing.assert_allclose(result.masks.sum(axis=0)[active], 1.0, atol=1e-5)
    assert np.all(result.masks[:, ~active] == 1.0)
    assert 0.0 < result.masks[0][active].mean() < 1.0


def test_spectral_separator_refuses_stereo_and_wrong_rates() -> None:
    separator = SpectralSeparator(tiny_params())
    mix, _ = disjoint_bands(0.5)
    with pytest.raises(AudioError, match="mono"):
        separator.run(np.stack([mix, mix]), RATE)
    with pytest.raises(AudioError, match="16000 Hz"):
        separator.run(mix, 16000)
