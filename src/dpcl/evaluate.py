"""Stage `evaluate`: score separated speech against the WSJ0-2mix references (DESIGN.md section 6).

Metrics, per source, after the permutation of estimates that maximises the mean SIR (bss_eval's
own rule, so the published numbers and ours pick the same pairing):

- SDR, SIR, SAR: `mir_eval.separation.bss_eval_sources` (512-tap distortion filter), the
  reference the literature's SDRi numbers were computed with. `fast_bss_eval`'s numpy backend
  computes the same quantities several times faster and is offered as a cross-checked fast path.
- SDR_mix: the same SDR with the unprocessed mixture as every source's estimate; SDRi = SDR - SDR_mix.
- SI-SDR (Le Roux et al., "SDR - half-baked or well done?", ICASSP 2019): zero-mean signals,
  the reference scaled by the least-squares gain; SI-SDRi against the mixture likewise.

`evaluate_folder` checks the whole folder pair (names, channels, rates, lengths, from the WAV
headers only) before any scoring starts, so a mismatch costs a second rather than an hour, then
scores mixtures in worker processes, one BLAS thread each.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ContextManager, Iterable, NamedTuple, Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from dpcl.atomic import atomic_path, writable_problem
from dpcl.audio import read_audio
from dpcl.features import spread_subset
from dpcl.errors import DpclError

BACKENDS = ("mir_eval", "fast")
FILTER_LENGTH = 512  # mir_eval's fixed bss_eval filter; fast_bss_eval is given the same
PER_SOURCE_METRICS = ("sdr", "sir", "sar", "sdr_mix", "sdri", "si_sdr", "si_sdr_mix", "si_sdri")
SUMMARY_METRICS = ("sdr", "sdri", "si_sdr", "si_sdri", "sir", "sar")
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
MAX_LISTED = 5  # names or problems quoted in one error message

# threadpoolctl's limiter lives as long as the worker process; kept here so nothing restores it.
_WORKER_THREAD_LIMIT: Any = None


class EvaluationError(DpclError, ValueError):
    """The estimates cannot be scored against the mixtures as given (names, shapes, rates)."""


# --------------------------------------------------------------------------- metrics


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019).

    Both signals are made zero-mean and the reference is scaled by the least-squares gain
    <e, r> / <r, r>, so neither a DC offset nor the estimate's loudness changes the score:
    a mask-based separator's output level is arbitrary. A perfect estimate gives +inf.
    """
    ref = reference - reference.mean()
    est = estimate - estimate.mean()
    target = (np.dot(est, ref) / np.dot(ref, ref)) * ref
    noise_energy = float(np.dot(est - target, est - target))
    if noise_energy == 0.0:
        return float("inf")
    return float(10.0 * np.log10(np.dot(target, target) / noise_energy))


def _fast_bss_eval() -> Any:
    """The fast_bss_eval module, imported without torch unless torch is loaded already.

    Its `__init__` imports torch only to offer a torch backend, which we must not use
    (DESIGN.md section 7); that import costs about 2 s and 180 MB (measured here). A `None` entry
    in sys.modules makes `import torch` fail for that one import, so the package falls back
    to numpy only, as it does where torch is not installed. torch stays importable afterwards.
    """
    if "fast_bss_eval" in sys.modules or "torch" in sys.modules:
        import fast_bss_eval

        return fast_bss_eval
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        import fast_bss_eval
    finally:
        del sys.modules["torch"]
    return fast_bss_eval


def _mir_eval_bss(references: np.ndarray, estimates: np.ndarray,
                  permute: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mir_eval's bss_eval_sources, its deprecation warning (DESIGN.md section 7) silenced here only.

    mir_eval 0.8 warns on every call that the separation module will go; the message is
    matched exactly so that any other warning from mir_eval still shows.
    """
    import mir_eval.separation  # imported where used: the fast backend never needs it

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"mir_eval\.separation\.bss_eval_sources\s+Deprecated",
                                category=FutureWarning)
        sdr, sir, sar, perm = mir_eval.separation.bss_eval_sources(references, estimates,
                                                                   compute_permutation=permute)
    return sdr, sir, sar, np.asarray(perm)


def _bss_eval(references: np.ndarray, estimates: np.ndarray,
              backend: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(sdr, sir, sar, perm) indexed by reference, perm[j] = the estimate matched to reference j.

    Both backends pick the permutation that maximises the mean SIR and report it the same way
    (fast_bss_eval's docstring suggests the inverse mapping; its code and our tests agree with
    mir_eval). fast_bss_eval runs on numpy arrays, never torch tensors (DESIGN.md section 7).
    """
    if backend == "mir_eval":
        return _mir_eval_bss(references, estimates, permute=True)
    sdr, sir, sar, perm = _fast_bss_eval().bss_eval_sources(
        references, estimates, filter_length=FILTER_LENGTH, zero_mean=False, compute_permutation=True)
    return sdr, sir, sar, np.asarray(perm)


def _mixture_sdr(references: np.ndarray, mix: np.ndarray, backend: str) -> np.ndarray:
    """SDR of the unprocessed mixture against each reference: the baseline of SDRi.

    The mixture stands in for every estimate, so no permutation is involved. For fast_bss_eval
    this uses `sdr` (pairwise, SDR only): its `compute_permutation=False` path passes a batch of
    vectors to np.linalg.solve, which numpy 2 reads as one matrix and refuses; with identical
    estimates the pairwise result per reference is the same number (agrees with mir_eval to 1e-13 dB).
    """
    tiled = np.repeat(mix[None, :], references.shape[0], axis=0)
    if backend == "mir_eval":
        return _mir_eval_bss(references, tiled, permute=False)[0]
    return np.asarray(_fast_bss_eval().sdr(references, tiled, filter_length=FILTER_LENGTH, zero_mean=False))


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise EvaluationError(f"unknown evaluation backend {backend!r}: expected one of {', '.join(BACKENDS)}")


def _check_signals(mix: np.ndarray, references: np.ndarray, estimates: np.ndarray) -> None:
    """Refuse what bss_eval cannot score, with a reason, before its own less helpful errors."""
    if mix.ndim != 1:
        raise EvaluationError(f"the mixture must be 1-D (samples,), got shape {mix.shape}")
    if references.ndim != 2 or references.shape[1] != mix.shape[0]:
        raise EvaluationError(f"references must be (sources, {mix.shape[0]}) like the mixture, "
                              f"got shape {references.shape}")
    if estimates.shape != references.shape:
        raise EvaluationError(f"estimates have shape {estimates.shape}, references {references.shape}")
    for kind, signals in (("reference", references), ("estimate", estimates)):
        for index, signal in enumerate(signals, start=1):
            if not np.any(signal):
                raise EvaluationError(f"{kind} s{index} is all zeros: bss_eval is undefined for silence")


def score_mixture(mix: np.ndarray, references: np.ndarray, estimates: np.ndarray, rate: int,
                  backend: str = "mir_eval") -> dict[str, Any]:
    """Every metric of one mixture: means over sources, `<metric>_<j>` per reference j (1-based).

    Estimates may come in any order: `permutation[j]` is the (0-based) estimate matched to
    reference j, and every per-source value, SI-SDR included, uses that same pairing. The
    mixture baseline needs no permutation: each reference is scored against the mixture itself.
    """
    _check_backend(backend)
    mix, references, estimates = (np.asarray(x, dtype=np.float64) for x in (mix, references, estimates))
    _check_signals(mix, references, estimates)
    n_sources = references.shape[0]
    sdr, sir, sar, perm = _bss_eval(references, estimates, backend)
    sdr_mix = _mixture_sdr(references, mix, backend)
    si = np.array([si_sdr(references[j], estimates[perm[j]]) for j in range(n_sources)])
    si_mix = np.array([si_sdr(references[j], mix) for j in range(n_sources)])
    per_source = dict(sdr=sdr, sir=sir, sar=sar, sdr_mix=sdr_mix, sdri=sdr - sdr_mix,
                      si_sdr=si, si_sdr_mix=si_mix, si_sdri=si - si_mix)
    scores: dict[str, Any] = dict(n_samples=int(mix.shape[0]), duration=mix.shape[0] / rate)
    scores.update({metric: float(np.mean(values)) for metric, values in per_source.items()})
    scores["permutation"] = tuple(int(p) for p in perm)
    for metric, values in per_source.items():
        scores.update({f"{metric}_{j}": float(v) for j, v in enumerate(values, start=1)})
    return scores


# --------------------------------------------------------------------------- checking the folders


@dataclass(frozen=True)
class _Job:
    """One mixture to score: every path it needs, so the worker reads nothing else."""

    name: str
    mixture: Path
    references: tuple[Path, ...]
    estimates: tuple[Path, ...]
    rate: int
    backend: str


def _listing(names: Iterable[str]) -> str:
    """'a, b, c (and 7 more)': enough names to find the problem, not a screenful."""
    names = sorted(names)
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" (and {len(names) - MAX_LISTED} more)" if len(names) > MAX_LISTED else "")


def _wav_names(folder: Path) -> set[str]:
    return {path.name for path in folder.glob("*.wav") if path.is_file()}


def _source_dirs(root: Path) -> list[str]:
    """Names of the s1, s2, ... folders present, to catch a 3-speaker tree scored as 2 speakers."""
    return sorted(p.name for p in root.glob("s*") if p.is_dir() and p.name[1:].isdigit())


def _require_folders(mixtures_dir: Path, estimates_dir: Path, n_sources: int) -> None:
    """Every folder the layout needs, and no source folder beyond n_sources."""
    if n_sources < 1:
        raise EvaluationError(f"n_sources must be at least 1, got {n_sources}")
    expected = [f"s{j}" for j in range(1, n_sources + 1)]
    for root, needed, what in ((mixtures_dir, ["mix", *expected], "mixtures"), (estimates_dir, expected, "estimates")):
        if not root.is_dir():
            raise EvaluationError(f"{what} folder not found: {root}")
        missing = [name for name in needed if not (root / name).is_dir()]
        if missing:
            raise EvaluationError(f"{what} folder {root} lacks {', '.join(missing)}/ "
                                  f"(expected {', '.join(needed)}/ for {n_sources} sources)")
        extra = sorted(set(_source_dirs(root)) - set(expected))
        if extra:
            raise EvaluationError(f"{what} folder {root} has {', '.join(extra)}/ but n_sources is {n_sources}: "
                                  f"wrong speaker count or a stale folder")


def _select_names(mixtures_dir: Path, estimates_dir: Path, n_sources: int, limit: int | None) -> list[str]:
    """Sorted mixture names to score; every one needs references and estimates.

    An estimate without a mixture is always an error (the wrong folder, or another split's
    output). With `limit`, only `limit` mixtures evenly spread over the sorted names need
    estimates (`dpcl.features.spread_subset`), the ones a separation with the same limit made.
    """
    mixtures = _wav_names(mixtures_dir / "mix")
    if not mixtures:
        raise EvaluationError(f"no .wav files in {mixtures_dir / 'mix'}")
    selected = spread_subset(list(mixtures), limit)  # sorted; the names `separate` picks for the same limit
    for j in range(1, n_sources + 1):
        for folder, what in ((mixtures_dir / f"s{j}", "reference"), (estimates_dir / f"s{j}", "estimate")):
            missing = set(selected) - _wav_names(folder)
            if missing:
                raise EvaluationError(f"{len(missing)} mixture(s) of {mixtures_dir / 'mix'} have no {what} "
                                      f"in {folder}: {_listing(missing)}")
        orphans = _wav_names(estimates_dir / f"s{j}") - mixtures
        if orphans:
            raise EvaluationError(f"{len(orphans)} estimate(s) in {estimates_dir / f's{j}'} have no mixture "
                                  f"in {mixtures_dir / 'mix'}: {_listing(orphans)}")
    return selected


class _Header(NamedTuple):
    channels: int
    rate: int
    frames: int


def _header(path: Path) -> _Header:
    """What the checks need from a WAV header; reading it costs microseconds, not the samples."""
    try:
        info = sf.info(str(path))
    except Exception as error:  # libsndfile raises several types for bad data
        raise EvaluationError(f"cannot read {path}: not a valid sound file ({error})") from None
    return _Header(info.channels, info.samplerate, info.frames)


def _header_problems(job: _Job) -> list[str]:
    """Channel, rate and length problems of one mixture's files, read from headers (fast).

    The mixture sets the expected rate and length: references and estimates must line up
    with it sample for sample, or bss_eval would compare misaligned signals.
    """
    problems = []
    mix = _header(job.mixture)
    for path in (job.mixture, *job.references, *job.estimates):
        info = mix if path == job.mixture else _header(path)
        if info.channels != 1:
            problems.append(f"{path} has {info.channels} channels, expected mono")
        if info.rate != job.rate:
            problems.append(f"{path} is sampled at {info.rate} Hz, expected {job.rate} Hz "
                            f"(the rate of the first mixture)")
        if info.frames != mix.frames:
            problems.append(f"{path} has {info.frames} samples but its mixture {job.mixture} has {mix.frames}")
    return problems


def _plan_jobs(mixtures_dir: Path, estimates_dir: Path, n_sources: int, backend: str = "mir_eval",
              limit: int | None = None) -> list[_Job]:
    """Check the folder pair completely and cheaply; one job per mixture, in name order.

    All problems are collected before raising so one run shows the whole extent of a mismatch
    (the first few are quoted).
    """
    _check_backend(backend)
    if limit is not None and limit < 1:
        raise EvaluationError(f"limit must be at least 1 (or None for all mixtures), got {limit}")
    mixtures_dir, estimates_dir = Path(mixtures_dir), Path(estimates_dir)
    _require_folders(mixtures_dir, estimates_dir, n_sources)
    names = _select_names(mixtures_dir, estimates_dir, n_sources, limit)
    rate = _header(mixtures_dir / "mix" / names[0]).rate
    sources = [f"s{j}" for j in range(1, n_sources + 1)]
    jobs = [_Job(name, mixtures_dir / "mix" / name, tuple(mixtures_dir / s / name for s in sources),
                 tuple(estimates_dir / s / name for s in sources), rate, backend) for name in names]
    problems = [problem for job in jobs for problem in _header_problems(job)]
    if problems:
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise EvaluationError(f"{len(problems)} problem(s) with the files to evaluate:\n  "
                              + "\n  ".join(problems[:MAX_LISTED]) + more)
    return jobs


# --------------------------------------------------------------------------- scoring in workers


def _score_job(job: _Job) -> dict[str, Any]:
    """Read one mixture's files and score them; runs in a worker process.

    Reading happens here, not in the parent, so the reads are spread over the workers too.
    """
    mix = read_audio(job.mixture, expected_rate=job.rate)[0]
    references = np.stack([read_audio(path, expected_rate=job.rate)[0] for path in job.references])
    estimates = np.stack([read_audio(path, expected_rate=job.rate)[0] for path in job.estimates])
    try:
        scores = score_mixture(mix, references, estimates, job.rate, job.backend)
    except EvaluationError as error:
        raise EvaluationError(f"{job.name} ({job.mixture.parent.parent}, estimates "
                              f"{job.estimates[0].parent.parent}): {error}") from None
    scores["permutation"] = " ".join(str(p) for p in scores["permutation"])
    return {"name": job.name, **scores}


def _one_thread() -> ContextManager[Any]:
    """Limit the loaded BLAS/OpenMP libraries to one thread while the context is open."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def _limit_threads() -> None:
    """Worker initializer: one BLAS/OpenMP thread per worker process.

    N workers on N cores each running N-thread BLAS would oversubscribe the machine (and make
    results depend on the worker count). Workers are forked with numpy already loaded, so the
    environment alone no longer reaches OpenBLAS: threadpoolctl changes the loaded library;
    the environment covers any library loaded later.
    """
    global _WORKER_THREAD_LIMIT
    os.environ.update(dict.fromkeys(THREAD_ENV, "1"))
    _WORKER_THREAD_LIMIT = _one_thread()


def _available_cores() -> int:
    """Cores this process may use (a CPU affinity mask or cgroup cpuset can be below cpu_count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _pool_context() -> multiprocessing.context.BaseContext:
    """fork where available (as elsewhere in dpcl): workers start in milliseconds with numpy,
    scipy and the scoring library already imported, and a caller's script needs no __main__ guard."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def _run_jobs(jobs: Sequence[_Job], workers: int) -> list[dict[str, Any]]:
    """Score every job, results in job order; a failing mixture stops the queued ones at once."""
    progress: dict[str, Any] = dict(total=len(jobs), desc="evaluate", unit="mix", mininterval=2)
    if workers <= 1:
        # One thread in the serial path too, so workers=1 and workers=N give identical numbers.
        with _one_thread():
            return [_score_job(job) for job in tqdm(jobs, **progress)]
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_limit_threads)
    try:
        results = list(tqdm(pool.map(_score_job, jobs, chunksize=1), **progress))
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def _columns(n_sources: int) -> list[str]:
    """Stable column order: identity, means, the permutation, then per-source groups."""
    per_source = [f"{metric}_{j}" for metric in PER_SOURCE_METRICS for j in range(1, n_sources + 1)]
    return ["name", "n_samples", "duration", *PER_SOURCE_METRICS, "permutation", *per_source]


def evaluate_folder(mixtures_dir: Path, estimates_dir: Path, n_sources: int, backend: str = "mir_eval",
                    workers: int | None = None, limit: int | None = None) -> pd.DataFrame:
    """Score every mixture of `mixtures_dir` (mix/, s1/..) against `estimates_dir` (s1/..).

    One row per mixture in name order, whatever `workers` is. All folder checks run before
    any scoring; `limit` scores only `limit` mixtures spread over the names (spread_subset).
    """
    if workers is not None and workers < 1:
        raise EvaluationError(f"workers must be at least 1 (or None for all cores), got {workers}")
    jobs = _plan_jobs(mixtures_dir, estimates_dir, n_sources, backend, limit)
    if backend == "fast":  # import the scoring library once, here: forked workers inherit it
        _fast_bss_eval()
    else:
        import mir_eval.separation  # noqa: F401
    workers = min(workers or _available_cores(), len(jobs))
    rows = _run_jobs(jobs, workers)
    return pd.DataFrame(rows, columns=_columns(n_sources))


def summarise(table: pd.DataFrame) -> dict[str, dict[str, float | int | None]]:
    """mean, median, std (population, so one mixture gives 0, not NaN) and count per metric.

    A perfect estimate scores +inf dB (and its SIR/SAR may be NaN). Strict JSON has neither, and
    one infinity would make the mean meaningless, so the statistics are over the finite values,
    `not_finite` counts the rest, and a metric with no finite value has null statistics.
    """
    if table.empty:
        raise EvaluationError("no mixtures were scored: nothing to summarise")
    summary: dict[str, dict[str, float | int | None]] = {}
    for metric in SUMMARY_METRICS:
        values = table[metric].to_numpy(dtype=np.float64)
        finite = values[np.isfinite(values)]
        stats = ((float(np.mean(finite)), float(np.median(finite)), float(np.std(finite))) if finite.size
                 else (None, None, None))
        summary[metric] = dict(zip(("mean", "median", "std"), stats), count=int(values.size),
                               not_finite=int(values.size - finite.size))
    return summary


def check_writable(path: Path) -> None:
    """Refuse an output path that cannot be written, before any scoring is spent on it."""
    problem = writable_problem(path, "file")
    if problem:
        raise EvaluationError(problem)


def run_evaluate(mixtures_dir: Path, estimates_dir: Path, out_csv: Path, out_json: Path, n_sources: int,
                 backend: str = "mir_eval", workers: int | None = None,
                 limit: int | None = None) -> dict[str, dict[str, float | int | None]]:
    """The stage: per-mixture CSV and summary JSON, written as a pair; returns the summary.

    Both paths are checked before scoring, and both files are staged before either replaces
    its old version, so a failure never leaves a new CSV beside an old JSON.
    `limit`: only `limit` mixtures spread over the names (the `spectral` method separates no more).
    """
    for path in (out_csv, out_json):
        check_writable(path)
    table = evaluate_folder(mixtures_dir, estimates_dir, n_sources, backend, workers, limit)
    summary = summarise(table)
    with atomic_path(out_csv) as csv_tmp, atomic_path(out_json) as json_tmp:
        table.to_csv(csv_tmp, index=False)
        json_tmp.write_text(json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return summary
