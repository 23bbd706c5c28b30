"""The evaluate stage: scores against mir_eval itself, permutation, SI-SDR, backends, folder checks.

Signals are made with numpy (speech-like: harmonics of a wavering f0 under a syllable envelope)
so that bss_eval's 512-tap filters face realistic spectra, yet the tests need no corpus.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import mir_eval.separation
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.signal import lfilter
from threadpoolctl import threadpool_limits

from dpcl.features import spread_subset
from dpcl.evaluate import (
    EvaluationError,
    evaluate_folder,
    run_evaluate,
    score_mixture,
    si_sdr,
    summarise,
)
from dpcl.errors import DpclError

RATE = 8000


def speech_like(rng: np.random.Generator, n: int, f0: float) -> np.ndarray:
    """Harmonics (1/k roll-off) of an f0 with 5 % vibrato, gated by a 3-5 Hz syllable envelope."""
    t = np.arange(n) / RATE
    f0_t = f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f0_t) / RATE
    harmonics = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, int(RATE / 2 / (1.1 * f0))))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 2 * np.pi)), 0.05, None) ** 2
    return 0.3 * harmonics * envelope + 0.003 * rng.standard_normal(n)


def separated(rng: np.random.Generator, refs: np.ndarray, leak: float = 0.15) -> np.ndarray:
    """A mildly imperfect separation: a short coloring filter, some of the other speaker, noise."""
    other = refs[::-1]
    return lfilter([1.0, 0.25, -0.1], [1.0], refs, axis=1) + leak * other + 0.01 * rng.standard_normal(refs.shape)


def example(seed: int = 0, seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mix, refs, estimates) of two speakers, a male-ish and a female-ish f0."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    refs = np.stack([speech_like(rng, n, 110.0), 0.7 * speech_like(rng, n, 210.0)])
    return refs.sum(axis=0), refs, separated(rng, refs)


def mir_eval_scores(refs: np.ndarray, ests: np.ndarray, permute: bool = True) -> tuple[np.ndarray, ...]:
    """mir_eval's own answer, called directly (its deprecation warning is not the point here).

    One BLAS thread, as the evaluator uses: with other jobs on the cores, more threads only
    oversubscribe them (measured 6x slower under load).
    """
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", FutureWarning)
        return mir_eval.separation.bss_eval_sources(refs, ests, compute_permutation=permute)


def write_tree(root: Path, names: list[str], seconds: float = 0.5, swap: bool = False) -> tuple[Path, Path]:
    """A WSJ0-2mix-like mixtures folder and an estimates folder (estimates swapped if asked)."""
    mixtures, estimates = root / "tt", root / "est"
    for i, name in enumerate(names):
        mix, refs, ests = example(seed=i, seconds=seconds)
        if swap:
            ests = ests[::-1]
        sf.write(_mkdir(mixtures / "mix") / name, mix, RATE, subtype="FLOAT")
        for j in range(2):
            sf.write(_mkdir(mixtures / f"s{j + 1}") / name, refs[j], RATE, subtype="FLOAT")
            sf.write(_mkdir(estimates / f"s{j + 1}") / name, ests[j], RATE, subtype="FLOAT")
    return mixtures, estimates


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def read(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float64")[0]


NAMES = ["a_0.5_b_-0.5.wav", "c_1.2_d_-1.2.wav", "e_0.1_f_-0.1.wav"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_tree(tmp_path_factory.mktemp("tree"), NAMES)


# --------------------------------------------------------------------------- metrics


def test_scores_equal_mir_eval_called_directly(tree: tuple[Path, Path]) -> None:
    mixtures, estimates = tree
    table = evaluate_folder(mixtures, estimates, n_sources=2, workers=1)
    assert list(table["name"]) == sorted(NAMES)
    for row in table.itertuples():
        mix = read(mixtures / "mix" / row.name)
        refs = np.stack([read(mixtures / f"s{j}" / row.name) for j in (1, 2)])
        ests = np.stack([read(estimates / f"s{j}" / row.name) for j in (1, 2)])
        sdr, sir, sar, perm = mir_eval_scores(refs, ests)
        sdr_mix = mir_eval_scores(refs, np.stack([mix, mix]), permute=False)[0]
        for j in (1, 2):
            assert getattr(row, f"sdr_{j}") == pytest.approx(sdr[j - 1], abs=1e-9)
            assert getattr(row, f"sir_{j}") == pytest.approx(sir[j - 1], abs=1e-9)
            assert getattr(row, f"sar_{j}") == pytest.approx(sar[j - 1], abs=1e-9)
            assert getattr(row, f"sdri_{j}") == pytest.approx(sdr[j - 1] - sdr_mix[j - 1], abs=1e-9)
        assert row.sdr == pytest.approx(sdr.mean(), abs=1e-9)
        assert row.sdri == pytest.approx((sdr - sdr_mix).mean(), abs=1e-9)
        assert row.permutation == " ".join(map(str, perm))
        assert row.n_samples == len(mix) and row.duration == pytest.approx(len(mix) / RATE)


def test_mir_eval_deprecation_warning_is_silenced_only_inside_the_evaluator() -> None:
    mix, refs, ests = example(seconds=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score_mixture(mix, refs, ests, RATE)
    with pytest.warns(FutureWarning, match="Deprecated as of mir_eval version 0.8"):
        mir_eval.separation.bss_eval_sources(refs[:1], ests[:1])  # one source: cheap


@pytest.mark.parametrize("backend", ["mir_eval", "fast"])
def test_swapped_estimates_give_the_same_scores(backend: str) -> None:
    mix, refs, ests = example(seed=3)
    straight = score_mixture(mix, refs, ests, RATE, backend)
    swapped = score_mixture(mix, refs, ests[::-1], RATE, backend)
    assert straight["permutation"] == (0, 1) and swapped["permutation"] == (1, 0)
    for key, value in straight.items():
        if key != "permutation":
            assert swapped[key] == pytest.approx(value, abs=1e-9), key


def test_swapped_estimate_folders_give_the_same_table(tree: tuple[Path, Path], tmp_path: Path) -> None:
    swapped = evaluate_folder(*write_tree(tmp_path, NAMES, swap=True), n_sources=2, backend="fast", workers=1)
    straight = evaluate_folder(*tree, n_sources=2, backend="fast", workers=1)
    assert (swapped["permutation"] == "1 0").all() and (straight["permutation"] == "0 1").all()
    numbers = straight.columns.drop(["name", "permutation"])
    pd.testing.assert_frame_equal(swapped[numbers], straight[numbers], rtol=0, atol=1e-9)


def test_perfect_estimates_score_very_high_and_sdri_is_sdr_minus_mixture_sdr() -> None:
    mix, refs, _ = example(seed=1)
    scores = score_mixture(mix, refs, refs.copy(), RATE)
    sdr_mix = mir_eval_scores(refs, np.stack([mix, mix]), permute=False)[0]
    for j in (1, 2):
        assert scores[f"sdr_{j}"] > 60
        assert scores[f"sdr_mix_{j}"] == pytest.approx(sdr_mix[j - 1], abs=1e-9)
        assert scores[f"sdri_{j}"] == pytest.approx(scores[f"sdr_{j}"] - scores[f"sdr_mix_{j}"])
        assert scores[f"si_sdr_{j}"] > 60
    assert scores["sdri"] == pytest.approx(scores["sdr"] - scores["sdr_mix"])


def test_si_sdr_known_answer() -> None:
    """estimate = 2 ref + n with n zero-mean and orthogonal to ref: SI-SDR = 10 log10(4 |r|^2 / |n|^2)."""
    rng = np.random.default_rng(7)
    ref = rng.standard_normal(4000)
    ref -= ref.mean()
    noise = rng.standard_normal(4000)
    noise -= noise.mean()
    noise -= np.dot(noise, ref) / np.dot(ref, ref) * ref
    noise *= 0.1
    expected = 10 * np.log10(4 * np.dot(ref, ref) / np.dot(noise, noise))
    assert si_sdr(ref, 2 * ref + noise) == pytest.approx(expected, abs=1e-9)
    assert si_sdr(ref + 3.0, 2 * ref + noise - 1.0) == pytest.approx(expected, abs=1e-9)  # DC ignored
    assert si_sdr(ref, -0.5 * ref) == float("inf")


def test_si_sdr_uses_the_bss_eval_permutation() -> None:
    mix, refs, ests = example(seed=4)
    scores = score_mixture(mix, refs, ests[::-1], RATE, "fast")
    for j in (1, 2):
        assert scores[f"si_sdr_{j}"] == pytest.approx(si_sdr(refs[j - 1], ests[j - 1]))
        assert scores[f"si_sdr_mix_{j}"] == pytest.approx(si_sdr(refs[j - 1], mix))
        assert scores[f"si_sdri_{j}"] == pytest.approx(scores[f"si_sdr_{j}"] - scores[f"si_sdr_mix_{j}"])


@pytest.mark.parametrize("seed", [0])
def test_fast_backend_agrees_with_mir_eval(seed: int) -> None:
    mix, refs, ests = example(seed=seed, seconds=1.5)
    slow = score_mixture(mix, refs, ests, RATE, "mir_eval")
    fast = score_mixture(mix, refs, ests, RATE, "fast")
    assert fast["permutation"] == slow["permutation"]
    for key, value in slow.items():
        if key != "permutation":
            assert fast[key] == pytest.approx(value, abs=1e-3), key


def test_three_speakers_in_rotated_order_match_mir_eval() -> None:
    """A rotation is not its own inverse (unlike any 2-speaker swap), so this pins which way
    `permutation` maps: permutation[j] is the estimate scored against reference j."""
    rng = np.random.default_rng(11)
    refs = np.stack([speech_like(rng, RATE // 4, f0) for f0 in (100.0, 160.0, 240.0)])
    ests = lfilter([1.0, 0.2], [1.0], refs, axis=1) + 0.1 * np.roll(refs, 1, axis=0)
    rotated = ests[[2, 0, 1]]
    scores = score_mixture(refs.sum(axis=0), refs, rotated, RATE, "fast")  # mir_eval: 3x slower, same code path
    sdr, sir, sar, perm = mir_eval_scores(refs, rotated)
    assert scores["permutation"] == tuple(perm) == (1, 2, 0)
    assert [scores[f"sdr_{j}"] for j in (1, 2, 3)] == pytest.approx(sdr, abs=1e-6)
    assert [scores[f"si_sdr_{j}"] for j in (1, 2, 3)] == pytest.approx([si_sdr(refs[j], ests[j]) for j in range(3)])


def test_score_mixture_refuses_bad_shapes_silence_and_backends() -> None:
    mix, refs, ests = example(seconds=0.2)
    with pytest.raises(EvaluationError, match="estimates have shape"):
        score_mixture(mix, refs, ests[:, :-1], RATE)
    with pytest.raises(EvaluationError, match="estimate s2 is all zeros"):
        score_mixture(mix, refs, np.stack([ests[0], 0 * ests[1]]), RATE)
    with pytest.raises(EvaluationError, match="unknown evaluation backend 'torch'"):
        score_mixture(mix, refs, ests, RATE, "torch")


# --------------------------------------------------------------------------- the folder checks


def check_refused(mixtures: Path, estimates: Path, *fragments: str) -> None:
    with pytest.raises(EvaluationError) as caught:
        evaluate_folder(mixtures, estimates, n_sources=2, workers=1)
    assert isinstance(caught.value, DpclError)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)


def test_refuses_missing_folders(tmp_path: Path) -> None:
    mixtures, estimates = write_tree(tmp_path, NAMES[:1], seconds=0.1)
    check_refused(tmp_path / "nowhere", estimates, "mixtures folder not found", "nowhere")
    (estimates / "s2").rename(tmp_path / "moved")
    check_refused(mixtures, estimates, f"estimates folder {estimates} lacks s2/")
    (tmp_path / "moved").rename(estimates / "s2")
    (estimates / "s3").mkdir()
    check_refused(mixtures, estimates, "has s3/ but n_sources is 2")


@pytest.mark.parametrize("arguments, message", [
    (dict(n_sources=0), "n_sources must be at least 1"),
    (dict(limit=0), "limit must be at least 1"),
    (dict(workers=0), "workers must be at least 1"),
    (dict(backend="torch"), "unknown evaluation backend 'torch'"),
])
def test_refuses_bad_arguments(tree: tuple[Path, Path], arguments: dict, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        evaluate_folder(*tree, **{"n_sources": 2, **arguments})


def test_refuses_a_missing_estimate(tmp_path: Path) -> None:
    mixtures, estimates = write_tree(tmp_path, NAMES, seconds=0.1)
    (estimates / "s2" / NAMES[1]).unlink()
    check_refused(mixtures, estimates, "1 mixture(s)", f"no estimate in {estimates / 's2'}", NAMES[1])


def test_refuses_an_estimate_without_a_mixture(tmp_path: Path) -> None:
    mixtures, estimates = write_tree(tmp_path, NAMES, seconds=0.1)
    (mixtures / "mix" / NAMES[2]).unlink()
    check_refused(mixtures, estimates, "have no mixture", NAMES[2])


def test_limit_spreads_over_the_speakers_and_matches_what_separate_picks() -> None:
    """The first N names by name would all start with one speaker; the spread covers every one."""
    names = [f"spk{s}-{u:03d}_0.5_other-{u:03d}_-0.5.wav" for s in range(8) for u in range(25)]
    picked = spread_subset(names, 50)
    assert len(picked) == len(set(picked)) == 50 and set(picked) <= set(names)
    assert {name.split("-")[0] for name in picked} == {f"spk{s}" for s in range(8)}
    assert {name.split("-")[0] for name in sorted(names)[:50]} == {"spk0", "spk1"}  # what `first N` gave
    assert spread_subset(list(reversed(names)), 50) == picked  # order-free: separate and evaluate agree
    assert spread_subset(names, None) == spread_subset(names, 500) == sorted(names)
    with pytest.raises(ValueError, match="at least 1"):
        spread_subset(names, 0)


def test_limit_needs_estimates_only_for_the_mixtures_it_scores(tmp_path: Path) -> None:
    mixtures, estimates = write_tree(tmp_path, NAMES, seconds=0.1)
    for j in (1, 2):
        (estimates / f"s{j}" / sorted(NAMES)[-1]).unlink()
    table = evaluate_folder(mixtures, estimates, n_sources=2, backend="fast", workers=1, limit=2)
    assert list(table["name"]) == sorted(NAMES)[:2]


def test_refuses_mismatched_lengths_naming_file_and_both_lengths(tmp_path: Path) -> None:
    mixtures, estimates = write_tree(tmp_path, NAMES, seconds=0.1)
    bad = estimates / "s1" / NAMES[0]
    sf.write(bad, read(bad)[:-7], RATE, subtype="FLOAT")
    check_refused(mixtures, estimates, f"{bad} has 793 samples but its mixture {mixtures / 'mix' / NAMES[0]} has 800")


def test_refuses_mismatched_rates(tmp_path: Path) -> None:
    mixtures, estimates = write_tree(tmp_path, NAMES, seconds=0.1)
    bad = estimates / "s2" / NAMES[1]
    sf.write(bad, read(bad), 16000, subtype="FLOAT")
    check_refused(mixtures, estimates, f"{bad} is sampled at 16000 Hz, expected 8000 Hz")


def test_refuses_a_stereo_estimate(tmp_path: Path) -> None:
    mixtures, estimates = write_tree(tmp_path, NAMES, seconds=0.1)
    bad = estimates / "s1" / NAMES[2]
    mono = read(bad)
    sf.write(bad, np.stack([mono, mono], axis=1), RATE, subtype="FLOAT")
    check_refused(mixtures, estimates, f"{bad} has 2 channels, expected mono")


def test_refuses_a_corrupt_file_before_scoring(tmp_path: Path) -> None:
    mixtures, estimates = write_tree(tmp_path, NAMES, seconds=0.1)
    bad = estimates / "s2" / NAMES[0]
    bad.write_bytes(b"not a wav file")
    check_refused(mixtures, estimates, f"cannot read {bad}")


# --------------------------------------------------------------------------- parallel, the stage


def test_two_workers_give_exactly_the_table_of_one(tree: tuple[Path, Path]) -> None:
    serial = evaluate_folder(*tree, n_sources=2, workers=1)
    parallel = evaluate_folder(*tree, n_sources=2, workers=2)
    pd.testing.assert_frame_equal(parallel, serial, check_exact=True)


def test_a_failing_worker_reports_the_mixture(tmp_path: Path) -> None:
    mixtures, estimates = write_tree(tmp_path, NAMES, seconds=0.1)
    bad = estimates / "s1" / NAMES[1]
    sf.write(bad, np.zeros(800), RATE, subtype="FLOAT")
    with pytest.raises(EvaluationError, match=f"{NAMES[1]}.*estimate s1 is all zeros"):
        evaluate_folder(mixtures, estimates, n_sources=2, workers=2)


def test_run_evaluate_writes_csv_and_summary(tree: tuple[Path, Path], tmp_path: Path) -> None:
    out_csv, out_json = tmp_path / "out" / "scores.csv", tmp_path / "out" / "summary.json"
    summary = run_evaluate(*tree, out_csv=out_csv, out_json=out_json, n_sources=2, backend="fast", workers=1)
    table = pd.read_csv(out_csv, dtype={"permutation": str})
    assert len(table) == len(NAMES) and "sdri_2" in table.columns
    assert json.loads(out_json.read_text()) == summary
    assert summary == summarise(table)
    assert set(summary) == {"sdr", "sdri", "si_sdr", "si_sdri", "sir", "sar"}
    assert summary["sdri"]["count"] == len(NAMES)
    assert summary["sdri"]["mean"] == pytest.approx(table["sdri"].mean())
    assert summary["sdri"]["median"] == pytest.approx(table["sdri"].median())
    assert summary["sdri"]["std"] == pytest.approx(table["sdri"].std(ddof=0))
    assert sorted(p.name for p in out_csv.parent.iterdir()) == ["scores.csv", "summary.json"]  # no leftovers


def strict_json(path: Path) -> Any:
    """json.loads as a strict reader (JavaScript's JSON.parse) would: no Infinity, no NaN."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.parametrize("backend", ["fast", "mir_eval"])
def test_perfect_estimates_give_strict_json_and_say_so(tmp_path: Path, backend: str, capsys) -> None:
    # Estimates equal to the references: SDR +inf on some backends. scores.json must stay strict
    # JSON (finite numbers or null) and the CLI must say what happened.
    import shutil

    from dpcl.cli import main

    mixtures, estimates = write_tree(tmp_path, NAMES, seconds=0.1)
    for j in (1, 2):
        shutil.rmtree(estimates / f"s{j}")
        shutil.copytree(mixtures / f"s{j}", estimates / f"s{j}")
    out_csv, out_json = tmp_path / "scores.csv", tmp_path / "scores.json"
    (tmp_path / "backend.yaml").write_text(f"evaluate: {{backend: {backend}}}\n")
    params = Path(__file__).resolve().parents[1] / "params.yaml"
    assert main(["evaluate", "--params", str(params), "--params", str(tmp_path / "backend.yaml"),
                 "--mixtures", str(mixtures),
                 "--estimates", str(estimates), "--csv", str(out_csv), "--json", str(out_json)]) == 0
    summary = strict_json(out_json)
    printed = capsys.readouterr().out
    assert "inf" not in printed.split(";")[0]
    for stats in summary.values():
        assert stats["count"] == len(NAMES)
        assert stats["mean"] is None or math.isfinite(stats["mean"])
    if backend == "fast":  # fast_bss_eval gives +inf for exact estimates: the path under test
        assert summary["sdri"]["not_finite"] >= 1
    if summary["sdri"]["not_finite"]:
        assert "infinite SDR" in printed
    if summary["sdri"]["not_finite"] == len(NAMES):
        assert summary["sdri"]["mean"] is None and "SDRi n/a" in printed


def test_summary_leaves_infinities_out_of_the_statistics_and_counts_them() -> None:
    table = pd.DataFrame({metric: [1.0, 3.0, math.inf] for metric in ("sdr", "sdri", "si_sdr", "si_sdri")}
                         | {"sir": [1.0, math.nan, math.inf], "sar": [math.nan] * 3})
    summary = summarise(table)
    assert summary["sdri"] == {"mean": 2.0, "median": 2.0, "std": 1.0, "count": 3, "not_finite": 1}
    assert summary["sir"]["mean"] == 1.0 and summary["sir"]["not_finite"] == 2
    assert summary["sar"] == {"mean": None, "median": None, "std": None, "count": 3, "not_finite": 3}


@pytest.mark.parametrize("which", ["csv", "json"])
def test_an_unwritable_output_stops_before_scoring_and_keeps_the_old_pair(tree: tuple[Path, Path], tmp_path: Path,
                                                                          which: str) -> None:
    # Unwritable even for root: the path's folder is a file. Was: a traceback after scoring, and
    # with --json unwritable a new scores.csv beside the old scores.json.
    out_csv, out_json = tmp_path / "scores.csv", tmp_path / "scores.json"
    run_evaluate(*tree, out_csv=out_csv, out_json=out_json, n_sources=2, backend="fast", workers=1)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out_csv, out_json)}
    (tmp_path / "notes").write_text("a file, not a folder\n")
    target = tmp_path / "notes" / f"scores.{which}"
    paths = {"out_csv": out_csv, "out_json": out_json, f"out_{which}": target}
    with pytest.raises(EvaluationError, match=f"cannot write {target}: {tmp_path / 'notes'} is not a folder"):
        run_evaluate(*tree, **paths, n_sources=2, backend="fast", workers=1)
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (out_csv, out_json)} == before


def test_an_output_that_is_a_folder_is_refused_before_scoring(tree: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "scores.json").mkdir()
    with pytest.raises(EvaluationError, match="scores.json is a folder"):
        run_evaluate(*tree, out_csv=tmp_path / "scores.csv", out_json=tmp_path / "scores.json", n_sources=2,
                     backend="fast", workers=1)
    assert not (tmp_path / "scores.csv").exists()
