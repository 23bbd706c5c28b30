"""Stage `cost`: seconds, peak memory and SDRi of the clustering methods against mixture length.

Why a stage of its own: the lecture's claim is about growth (a dense affinity is O(N^2) in the
number of bins, DPCL's k-means and the low-rank spectral step are O(N)), which one table of
4-second test mixtures cannot show. The test split's mixtures are concatenated (mixture and
sources alike, in name order) into one long signal and cut to each length of
`spectral.cost_lengths_s`; every method separates the same cuts:

    spectral-dense  Gaussian affinity of all active bins; refused past `spectral.max_dense_gib`
    spectral-knn    sparse k-nearest-neighbour affinity, ARPACK
    dpcl            the trained embeddings, k-means
    dpcl-spectral   the trained embeddings, low-rank spectral step (SVD of N x (D + 1))
    ibm             the ceiling, for the SDRi column

Peak memory is the resident set's high-water mark above the level just before the call
(Linux: reset through /proc/self/clear_refs; elsewhere tracemalloc, numpy's share only). Before
each call, freed heap memory is handed back to the system (glibc's malloc_trim): otherwise a
method reuses pages an earlier, larger one left resident and shows no growth at all (measured:
0.0 MiB for the k-NN affinity after a dense run, whatever the length).
Growth exponents are least-squares slopes of log(seconds) and log(peak bytes) on log(length).
The benchmark script benchmarks/spectral_cost.py runs the same function.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
from tqdm import tqdm

from dpcl.atomic import atomic_dir, write_json
from dpcl.audio import read_audio
from dpcl.config import Params
from dpcl.errors import DpclError
from dpcl.evaluate import score_mixture
from dpcl.features import mixture_names
from dpcl.separate import Separation, Separator, SpectralSeparator, oracle_separation
from dpcl.spectral import AffinityTooLarge
from dpcl.stft import Stft

log = logging.getLogger(__name__)

COST_METHODS = ("spectral-dense", "spectral-knn", "dpcl", "dpcl-spectral", "ibm")
CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def release_free_memory() -> None:
    """Return the allocator's free pages to the system, so the resident set is the live memory.

    gc first (cycles hold arrays), then glibc's malloc_trim(0), which also releases free pages in
    the middle of the heap. Without glibc (macOS, musl) it is a no-op and peaks may read low.
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def peak_memory() -> Iterator[dict[str, int]]:
    """Context yielding a dict whose `bytes` is, on exit, the peak memory the block added."""
    result = {"bytes": 0}
    release_free_memory()
    try:
        CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident set
        before = _status_kib("VmRSS")
        use_proc = True
    except (OSError, KeyError):
        tracemalloc.start()
        use_proc = False
    try:
        yield result
    finally:
        if use_proc:
            result["bytes"] = max(0, _status_kib("VmHWM") - before) * 1024
        else:
            result["bytes"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()


def long_signal(split_dir: Path, rate: int, n_sources: int,
                seconds: float) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(mix (n,), sources (C, n), starts) at least `seconds` long: the split's mixtures end to end,
    by name; `starts` are the sample indices where each mixture begins (its first is 0)."""
    names = sorted(mixture_names(split_dir.parent.parent, split_dir.parent.name, split_dir.name))
    mixes, sources, starts, total = [], [], [], 0
    for name in names:
        mix, _ = read_audio(split_dir / "mix" / name, expected_rate=rate)
        mixes.append(mix)
        sources.append(np.stack([read_audio(split_dir / f"s{c + 1}" / name, expected_rate=rate)[0]
                                 for c in range(n_sources)]))
        starts.append(total)
        total += len(mix)
        if total >= seconds * rate:
            return np.concatenate(mixes), np.concatenate(sources, axis=1), starts
    raise DpclError(f"{split_dir} holds {total / rate:.1f} s of mixtures, fewer than the {seconds:g} s "
                    "spectral.cost_lengths_s asks for")


def segment_scores(mix: np.ndarray, sources: np.ndarray, estimates: np.ndarray, starts: list[int], rate: int,
                   backend: str) -> dict[str, float]:
    """SDRi and SI-SDRi of a cut, scored per original mixture and averaged (weighted by length).

    Why per segment: a cut strings together mixtures of different speaker pairs, so its "s1" is
    another person in each segment. One permutation over the whole cut would score a clustering
    that is right in every segment but labels the speakers in a different order from segment to
    segment as a failure; each segment gets its own best permutation here, as it would in the
    test split. A last segment shorter than 0.25 s (cut off by the length) is too short to score;
    a cut shorter than that altogether is scored whole.
    """
    bounds = [s for s in starts if s < len(mix)] + [len(mix)]
    segments = [(begin, end) for begin, end in zip(bounds[:-1], bounds[1:]) if end - begin >= rate // 4]
    sdri, si_sdri, weights = [], [], []
    for begin, end in segments or [(0, len(mix))]:
        scores = score_mixture(mix[begin:end], sources[:, begin:end], estimates[:, begin:end], rate, backend)
        sdri.append(scores["sdri"])
        si_sdri.append(scores["si_sdri"])
        weights.append(end - begin)
    return {"sdri": float(np.average(sdri, weights=weights)), "si_sdri": float(np.average(si_sdri, weights=weights))}


def _engines(params: Params, model_path: Path | None) -> dict[str, Callable[[np.ndarray, np.ndarray], Separation]]:
    """method -> function(mix, sources) -> Separation, for the methods that can run."""
    rate = params.corpus.sample_rate
    stft = Stft.from_config(params.features)
    dense, knn = SpectralSeparator(params, "dense"), SpectralSeparator(params, "knn")
    engines: dict[str, Callable[[np.ndarray, np.ndarray], Separation]] = {
        "spectral-dense": lambda mix, _: dense.run(mix, rate),
        "spectral-knn": lambda mix, _: knn.run(mix, rate),
    }
    if model_path is not None:
        kmeans = Separator(model_path, None, params.separate)
        spectral = Separator(model_path, None, params.separate, clustering="spectral")
        engines["dpcl"] = lambda mix, _: kmeans.run(mix, rate)
        engines["dpcl-spectral"] = lambda mix, _: spectral.run(mix, rate)
    engines["ibm"] = lambda mix, sources: oracle_separation(mix, list(sources), "ibm", stft, params.features)
    return engines


def measure_growth(params: Params, split_dir: Path, model_path: Path | None) -> pd.DataFrame:
    """One row per (method, length): median seconds, peak bytes, active bins, SDRi, or why refused."""
    cfg = params.spectral
    rate, n_sources = params.corpus.sample_rate, params.mix.n_speakers
    lengths = sorted(cfg.cost_lengths_s)
    mix_all, sources_all, starts = long_signal(Path(split_dir), rate, n_sources, lengths[-1])
    engines = _engines(params, model_path)
    warm = int(min(0.5, lengths[0]) * rate)
    for method, engine in engines.items():  # warm-up: lazy imports and first allocations are not the method's cost
        try:
            engine(mix_all[:warm], sources_all[:, :warm])
        except AffinityTooLarge:  # a budget too small for even the shortest cut: every length says so below
            log.info("%s: no warm-up, the shortest cut is over the memory budget", method)
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(lengths) * len(engines), desc="cost growth", unit="run") as bar:
        for seconds in lengths:
            n = int(round(seconds * rate))
            mix, sources = mix_all[:n], sources_all[:, :n]
            for method, engine in engines.items():
                row: dict[str, Any] = {"method": method, "length_s": seconds}
                try:
                    times, peaks = [], []
                    for _ in range(cfg.cost_repeats):
                        with peak_memory() as peak:
                            started = time.perf_counter()
                            result = engine(mix, sources)
                            times.append(time.perf_counter() - started)
                        peaks.append(peak["bytes"])
                    scores = segment_scores(mix, sources, result.estimates, starts, rate, params.evaluate.backend)
                    row.update(seconds=float(np.median(times)), peak_bytes=int(np.median(peaks)),
                               active_bins=int(result.active.sum()), sdri=scores["sdri"],
                               si_sdri=scores["si_sdri"], refused="")
                except AffinityTooLarge as error:
                    log.info("%s at %g s: %s", method, seconds, error)
                    row.update(seconds=np.nan, peak_bytes=np.nan, active_bins=np.nan, sdri=np.nan,
                               si_sdri=np.nan, refused=str(error))
                rows.append(row)
                bar.update()
    return pd.DataFrame(rows)


def growth_exponents(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per method: slopes of log(seconds) and log(peak bytes) on log(length), where >= 2 lengths ran."""
    exponents: dict[str, dict[str, float]] = {}
    for method, rows in table.groupby("method", sort=False):
        ran = rows.dropna(subset=["seconds"])
        if len(ran) < 2:
            continue
        x = np.log(ran["length_s"].to_numpy(dtype=float))
        entry = {"time": float(np.polyfit(x, np.log(ran["seconds"].to_numpy(dtype=float)), 1)[0])}
        peaks = ran["peak_bytes"].to_numpy(dtype=float)
        if np.all(peaks > 0):
            entry["memory"] = float(np.polyfit(x, np.log(peaks), 1)[0])
        exponents[str(method)] = entry
    return exponents


def plot_growth(table: pd.DataFrame, exponents: dict[str, dict[str, float]], path: Path) -> None:
    """Seconds and peak memory against mixture length, log-log, each line labelled with its exponent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, rows in table.groupby("method", sort=False):
        ran = rows.dropna(subset=["seconds"])
        if ran.empty:
            continue
        slope = exponents.get(str(method), {})
        for axis, column, key, scale in ((axes[0], "seconds", "time", 1.0), (axes[1], "peak_bytes", "memory", 2**-20)):
            values = ran[column].to_numpy(dtype=float) * scale
            keep = values > 0
            label = f"{method} (exponent {slope[key]:.2f})" if key in slope else str(method)
            line, = axis.plot(ran["length_s"].to_numpy()[keep], values[keep], marker="o", label=label)
            refused = rows[rows["seconds"].isna()]
            if len(refused) and keep.any():  # say on the plot where the memory guard stopped the line
                axis.annotate(f"refused from {refused['length_s'].min():g} s", (ran["length_s"].to_numpy()[keep][-1],
                              values[keep][-1]), textcoords="offset points", xytext=(6, -10), fontsize=7,
                              color=line.get_color())
    lengths = sorted(table["length_s"].unique())
    for axis, ylabel in ((axes[0], "seconds per mixture"), (axes[1], "peak memory added (MiB)")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.xaxis.set_minor_locator(NullLocator())  # the measured lengths as ticks, not 6 x 10^-1
        axis.set_xticks(lengths, [f"{length:g}" for length in lengths])
        axis.set_xlabel("mixture length (s)")
        axis.set_ylabel(ylabel)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle("Cost against mixture length, log-log; exponent: the fitted slope (2 for O(N^2), 1 for O(N))")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def run_cost(params: Params, split_dir: Path, model_path: Path | None, out_dir: Path) -> dict[str, Any]:
    """The stage: growth.csv, growth.json (rows and exponents) and growth.png in `out_dir` (atomic)."""
    table = measure_growth(params, split_dir, model_path)
    exponents = growth_exponents(table)
    with atomic_dir(Path(out_dir)) as staging:
        table.to_csv(staging / "growth.csv", index=False)
        summary = {"exponents": exponents, "rows": table.replace({np.nan: None}).to_dict(orient="records"),
                   "max_dense_gib": params.spectral.max_dense_gib}
        write_json(staging / "growth.json", summary)
        plot_growth(table, exponents, staging / "growth.png")
    return summary


__all__ = ["COST_METHODS", "growth_exponents", "long_signal", "measure_growth", "peak_memory", "plot_growth",
           "segment_scores",
           "release_free_memory", "run_cost"]
