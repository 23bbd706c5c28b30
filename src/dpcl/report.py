"""Stage `report`: tables, figures and audio that a person reads, plus DVC metrics and plots.

Inputs are the stage outputs already on disk: per-method score tables (`dpcl evaluate`), the
test split's mixtures.csv (speaker facts), training histories, separated audio, the example
mixture that `separate` saved and the cost run (`dpcl cost`: growth.json, growth.png). Outputs,
all under `reports/`:

    site/index.html        the report: targets, tables, figures, audio of a few examples
    site/tables/*.csv      every table of the page
    site/figures/*.png     every figure of the page
    site/audio/*.wav       mixture, references and estimates of the examples
    metrics.json           summary per method and the targets, for `dvc metrics show`
    sdri.csv               per-mixture SDRi per method, for `dvc plots show`
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on these machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dpcl.atomic import atomic_dir, write_json  # noqa: E402
from dpcl.config import TrackingConfig  # noqa: E402
from dpcl.errors import DpclError  # noqa: E402

METRICS = ("sdri", "si_sdri", "sdr", "si_sdr", "sir", "sar")
ORACLES = ("ibm", "irm")
# The section "Spectral clustering vs Deep Clustering": these methods of the pipeline, in this order.
SPECTRAL_SECTION = ("spectral", "dpcl", "dpcl-spectral", *ORACLES)
N_AUDIO_EXAMPLES = 3


@dataclass(frozen=True)
class ReportInputs:
    """Where the report reads from (paths come from the Snakefile / dvc.yaml)."""

    scores_dir: Path  # <method>.csv per method
    mixtures_dir: Path  # the scored split: mix/, s1/, s2/, mixtures.csv
    separated_dir: Path  # <method>/s1, s2, example.npz, timing.json
    models_dir: Path  # dpcl/history.csv, baselines/<run>/history.csv
    cost_dir: Path  # growth.json, growth.png of `dpcl cost`


def pair_kinds(mixtures: pd.DataFrame) -> pd.DataFrame:
    """Speaker-pair facts per mixture: sex (same/different/unknown), language, real or synthetic."""
    out = pd.DataFrame({"name": mixtures["name"]})

    def pair(column: str, same: str, different: str) -> pd.Series:
        if f"{column}_1" not in mixtures or f"{column}_2" not in mixtures:
            return pd.Series("unknown", index=mixtures.index)
        a, b = mixtures[f"{column}_1"].astype(str), mixtures[f"{column}_2"].astype(str)
        unknown = a.isin(["unknown", "nan", ""]) | b.isin(["unknown", "nan", ""])
        return pd.Series(np.where(unknown, "unknown", np.where(a == b, same, different)), index=mixtures.index)

    out["sex_pair"] = pair("sex", "same sex", "different sex")
    out["language_pair"] = pair("language", "same language", "different languages")
    if "source_1" in mixtures and "source_2" in mixtures:
        sources = np.sort(mixtures[["source_1", "source_2"]].astype(str).to_numpy(), axis=1)
        out["source_pair"] = [f"{a}+{b}" for a, b in sources]
    else:
        out["source_pair"] = "unknown"
    if "kind_1" in mixtures and "kind_2" in mixtures:
        kinds = np.sort(mixtures[["kind_1", "kind_2"]].astype(str).to_numpy(), axis=1)
        out["kind_pair"] = [f"{a}+{b}" for a, b in kinds]
    else:
        out["kind_pair"] = "unknown"
    return out


def load_scores(scores_dir: Path, methods: list[str]) -> pd.DataFrame:
    """All per-mixture score tables in one long frame with a `method` column."""
    frames = []
    for method in methods:
        path = scores_dir / f"{method}.csv"
        if not path.is_file():
            raise DpclError(f"scores of {method!r} not found at {path}: run the `evaluate` stage first")
        frames.append(pd.read_csv(path).assign(method=method))
    return pd.concat(frames, ignore_index=True)


def summary_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean, median and standard deviation of every metric per method, best SDRi first."""
    grouped = scores.groupby("method")[list(METRICS)].agg(["mean", "median", "std"])
    grouped.columns = [f"{metric} {stat}" for metric, stat in grouped.columns]
    return grouped.sort_values("sdri mean", ascending=False).round(2)


def _mixtures_words(goal: dict) -> str:
    """"the 300 real+real test mixtures", or "all 10 test mixtures" where none is real+real."""
    if goal["test_mixtures"] == "all":
        return f"all {goal['n_mixtures']} test mixtures"
    return f"the {goal['n_mixtures']} {html.escape(goal['test_mixtures'])} test mixtures"


def headline_scores(scores: pd.DataFrame, kinds: pd.DataFrame | None) -> tuple[pd.DataFrame, str]:
    """The scores of the headline split: the real+real test mixtures when there are any, else all."""
    if kinds is not None and (kinds["kind_pair"] == "real+real").any():
        real = set(kinds.loc[kinds["kind_pair"] == "real+real", "name"])
        return scores[scores["name"].isin(real)], "real+real"
    return scores, "all"


# The paper-style table: what a reader of a separation paper looks for first, units in the headers.
PAPER_COLUMNS = {"sdri": "SDRi (dB)", "si_sdri": "SI-SDRi (dB)", "sir": "SIR (dB)", "sar": "SAR (dB)"}


def paper_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean SDRi, SI-SDRi, SIR and SAR per method and SDRi as a share of the IBM's: learned methods
    best first, then the oracles (the ceiling, not competitors)."""
    means = scores.groupby("method")[list(PAPER_COLUMNS)].mean()
    ibm = means["sdri"].get("ibm", np.nan)
    oracle = means.index.isin(["ibm", "irm"])
    ordered = pd.concat([means[~oracle].sort_values("sdri", ascending=False),
                         means[oracle].sort_values("sdri", ascending=False)])
    table = ordered.rename(columns=PAPER_COLUMNS)
    table["share of IBM (%)"] = 100 * ordered["sdri"] / ibm
    table.insert(0, "method", table.index)
    return table.reset_index(drop=True).round(2)


def breakdown_table(scores: pd.DataFrame, kinds: pd.DataFrame, by: str) -> pd.DataFrame:
    """Mean SDRi per method and speaker-pair kind, with the number of mixtures per kind."""
    merged = scores.merge(kinds, on="name", how="left")
    table = merged.pivot_table(index="method", columns=by, values="sdri", aggfunc="mean").round(2)
    counts = merged[merged["method"] == merged["method"].iloc[0]][by].value_counts()
    table.columns = [f"{c} (n={counts.get(c, 0)})" for c in table.columns]
    return table


# The targets of this stage of the project (README "Targets"): DPCL's SDRi on real voices unseen in
# training as a share of the ideal binary mask's, and its margin over the best neuron-model baseline
# trained permutation-invariantly (the strongest of them). The long-term aim is DPCL++'s 80%.
SHARE_OF_IBM_TARGET = 0.40
MARGIN_OVER_PIT_TARGET_DB = 3.0
RTF_TARGET = 0.05  # separation real-time factor of DPCL on one CPU thread (the project's target)


def targets(scores: pd.DataFrame, kinds: pd.DataFrame | None = None) -> dict:
    """The headline: on the real+real test mixtures (all of them when kinds are unknown), DPCL's mean
    SDRi, the IBM's, DPCL's share of it, and DPCL's margin over the best PIT and fixed baselines."""
    scores, split = headline_scores(scores, kinds)
    means = scores.groupby("method")["sdri"].mean()
    result: dict = {"test_mixtures": split, "n_mixtures": int(scores["name"].nunique()) if "name" in scores else None,
                    "dpcl_sdri": float(means.get("dpcl", np.nan)), "ibm_sdri": float(means.get("ibm", np.nan))}
    result["dpcl_share_of_ibm"] = result["dpcl_sdri"] / result["ibm_sdri"]
    result["share_target"] = SHARE_OF_IBM_TARGET
    result["share_target_met"] = bool(result["dpcl_share_of_ibm"] >= SHARE_OF_IBM_TARGET)
    for objective in ("pit", "fixed"):
        group = means[[m for m in means.index if m.startswith("baseline-") and m.endswith(f"-{objective}")]]
        if len(group):
            result[f"best_{objective}_baseline"] = str(group.idxmax())
            result[f"best_{objective}_sdri"] = float(group.max())
            result[f"margin_over_best_{objective}_db"] = result["dpcl_sdri"] - float(group.max())
    if "margin_over_best_pit_db" in result:
        result["margin_target_db"] = MARGIN_OVER_PIT_TARGET_DB
        result["margin_target_met"] = bool(result["margin_over_best_pit_db"] >= MARGIN_OVER_PIT_TARGET_DB)
    return result


def separation_summaries(separated_dir: Path, methods: list[str]) -> dict[str, dict]:
    """Each method's separate-stage summary.json (the methods that have one), read once for the
    real-time factors, the seconds per mixture and the spectral method's affinity."""
    out = {}
    for method in methods:
        path = separated_dir / method / "summary.json"
        if path.is_file():
            out[method] = json.loads(path.read_text())
    return out


def seconds_per_mixture(summaries: dict[str, dict]) -> dict[str, float]:
    """Seconds per mixture of each method's separate stage: the same clock for every method, so
    spectral clustering and DPCL compare on one machine."""
    return {method: float(data["rtf"]) * float(data["audio_seconds"]) / int(data["mixtures"])
            for method, data in summaries.items() if data.get("mixtures") and "rtf" in data}


def load_cost(cost_dir: Path) -> dict:
    """The cost run's growth.json (rows per method and length, fitted exponents)."""
    path = Path(cost_dir) / "growth.json"
    if not path.is_file():
        raise DpclError(f"cost growth not found at {path}: run the `cost` stage first")
    return json.loads(path.read_text())


def spectral_table(scores: pd.DataFrame, seconds: dict[str, float]) -> pd.DataFrame:
    """Spectral clustering against DPCL (k-means and spectral) and the oracles on the test split.

    `spectral` scores only spectral.max_mixtures mixtures (spread over the split), so every method's SDRi is
    also given on exactly those mixtures (`*_same`: the fair comparison); `sdri_all` shows how far
    that subset is from the whole split.
    """
    missing = [m for m in SPECTRAL_SECTION if m not in set(scores["method"])]
    if missing:
        raise DpclError(f"scores of {', '.join(missing)} missing: the pipeline's separate/evaluate stages make them")
    subset = set(scores.loc[scores["method"] == "spectral", "name"])
    rows = []
    for method in SPECTRAL_SECTION:
        own = scores[scores["method"] == method]
        same = own[own["name"].isin(subset)]
        rows.append({"method": method, "mixtures": len(own), "sdri_same": same["sdri"].mean(),
                     "si_sdri_same": same["si_sdri"].mean(), "sdri_all": own["sdri"].mean(),
                     "seconds_per_mixture": seconds.get(method, np.nan)})
    return pd.DataFrame(rows).set_index("method").round(3)


def spectral_headers(n_same: int) -> dict[str, str]:
    """Readable column names of `spectral_table` for the page."""
    return {"mixtures": "mixtures scored", "sdri_same": f"SDRi (dB), the {n_same} mixtures of spectral",
            "si_sdri_same": f"SI-SDRi (dB), the {n_same} mixtures of spectral",
            "sdri_all": "SDRi (dB), all its mixtures", "seconds_per_mixture": "seconds per mixture"}


def cost_table(cost: dict) -> pd.DataFrame:
    """The cost run per method: seconds and SDRi at each length ("refused" past the memory
    budget), peak memory, and the fitted growth exponents of time and memory."""
    rows = pd.DataFrame(cost["rows"])
    table = pd.DataFrame(index=pd.Index(rows["method"].drop_duplicates(), name="method"))
    for length, at in rows.groupby("length_s", sort=True):
        at = at.set_index("method")
        ran = at["seconds"].notna()
        table[f"seconds @ {length:g} s"] = at["seconds"].round(3).astype(object).where(ran, "refused")
        table[f"SDRi @ {length:g} s"] = at["sdri"].round(2).astype(object).where(ran, "refused")
        table[f"MiB @ {length:g} s"] = (at["peak_bytes"] / 2**20).round(1).astype(object).where(ran, "refused")
    exponents = cost.get("exponents", {})
    table["time exponent"] = [exponents.get(m, {}).get("time", np.nan) for m in table.index]
    table["memory exponent"] = [exponents.get(m, {}).get("memory", np.nan) for m in table.index]
    return table


def spectral_metrics(table: pd.DataFrame, cost: dict) -> dict:
    """The section's numbers for reports/metrics.json (dvc metrics): finite values only."""
    def clean(values: dict) -> dict:
        return {k: round(float(v), 4) for k, v in values.items()
                if isinstance(v, (int, float, np.number)) and np.isfinite(v)}

    rows = pd.DataFrame(cost["rows"])
    dense = rows[(rows["method"] == "spectral-dense") & rows["seconds"].notna()]
    return {"test_split": {str(m): clean(row.to_dict()) for m, row in table.iterrows()},
            "cost_exponents": {m: clean(e) for m, e in cost.get("exponents", {}).items()},
            "dense_longest_s": float(dense["length_s"].max()) if len(dense) else 0.0}


def cost_method(summaries: dict[str, dict], method: str) -> str:
    """The cost run's name for a pipeline method: `spectral` ran with one affinity (its summary's
    model, `spectral-knn` or `spectral-dense`); the others keep their names."""
    if method != "spectral":
        return method
    return str(summaries.get(method, {}).get("model") or "spectral-knn")


def run_extras(summaries: dict[str, dict], methods: list[str], seconds: dict[str, float],
               cost: dict) -> dict[str, dict]:
    """Per method, what its MLflow scores run carries beside the scores: seconds per mixture and
    the cost run's growth exponents of the same method, where there are any."""
    extras: dict[str, dict] = {}
    for method in methods:
        entry = {}
        if method in seconds:
            entry["seconds_per_mixture"] = seconds[method]
        for key, value in cost.get("exponents", {}).get(cost_method(summaries, method), {}).items():
            entry[f"cost_{key}_exponent"] = float(value)
        extras[method] = entry
    return extras


# --------------------------------------------------------------------------- figures


def plot_sdri_distribution(scores: pd.DataFrame, path: Path) -> None:
    order = scores.groupby("method")["sdri"].mean().sort_values().index.tolist()
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(order) + 1.2))
    ax.boxplot([scores.loc[scores.method == m, "sdri"] for m in order], orientation="horizontal", showmeans=True,
               tick_labels=order)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("SDR improvement over the mixture (dB)")
    ax.set_title("SDRi per mixture on unseen test speakers")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training_curves(histories: dict[str, pd.DataFrame], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for name, history in histories.items():
        ax = axes[0] if name == "dpcl" else axes[1]
        x = np.arange(1, len(history) + 1)
        line, = ax.plot(x, history["val_loss"], label=name)
        ax.plot(x, history["train_loss"], ls=":", color=line.get_color())
    axes[0].set_title("DPCL: deep clustering loss (solid: validation, dotted: training)")
    axes[1].set_title("Neuron-model baselines: mask loss")
    for ax in axes:
        ax.set_xlabel("epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_example(example: dict[str, np.ndarray], estimates_logmag: list[np.ndarray], path: Path) -> None:
    """Spectrograms of mixture, sources, masks and estimates; PCA of the embeddings."""
    logmag, masks, sources = example["mixture_logmag"], example["masks"], example["source_logmag"]
    panels = [("mixture", logmag)] + [(f"source {i + 1}", s) for i, s in enumerate(sources)]
    panels += [(f"DPCL mask {i + 1}", m) for i, m in enumerate(masks)]
    panels += [(f"estimate {i + 1}", e) for i, e in enumerate(estimates_logmag)]
    fig, axes = plt.subplots(2, (len(panels) + 2) // 2, figsize=(15, 6))
    axes = axes.ravel()
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(image.T, origin="lower", aspect="auto", cmap="magma" if "mask" not in title else "gray")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("frame")
        ax.set_ylabel("bin")
    ax = axes[len(panels)]
    if "embeddings" in example:
        active = example["active"].astype(bool).ravel()
        emb = example["embeddings"][active]
        centred = emb - emb.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)  # PCA by SVD
        xy = centred @ vt[:2].T
        dominant = example["dominant"].ravel()[active]
        rng = np.random.default_rng(0)
        keep = rng.choice(len(xy), size=min(4000, len(xy)), replace=False)
        ax.scatter(xy[keep, 0], xy[keep, 1], c=dominant[keep], cmap="coolwarm", s=2)
        ax.set_title("embeddings (PCA), colour = dominant speaker", fontsize=9)
    for extra in axes[len(panels) + 1:]:
        extra.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- page


def _table_html(table: pd.DataFrame) -> str:
    """A method-indexed table without pandas' bare index-name row: the index becomes a column."""
    named = table.rename_axis(None)
    named.insert(0, "method", named.index)
    return named.to_html(border=0, classes="t", na_rep="–", index=False, float_format=lambda v: f"{v:.2f}")


def _paper_html(paper: pd.DataFrame) -> str:
    """The headline table, DPCL's row in bold."""
    rows = paper.to_html(border=0, classes="t", na_rep="–", index=False, float_format=lambda v: f"{v:.2f}")
    return rows.replace("<tr>\n      <td>dpcl</td>", "<tr class='dpcl'>\n      <td>dpcl</td>")


def _audio(rel: str, label: str) -> str:
    return f'<figure><figcaption>{html.escape(label)}</figcaption><audio controls src="{rel}"></audio></figure>'


def _methods(scores_dir: Path) -> list[str]:
    methods = sorted(p.stem for p in Path(scores_dir).glob("*.csv"))
    if not methods:
        raise DpclError(f"no score tables (<method>.csv) in {scores_dir}: run the `evaluate` stages first")
    return methods


def _histories(models_dir: Path) -> dict[str, pd.DataFrame]:
    histories = {}
    if (models_dir / "dpcl" / "history.csv").is_file():
        histories["dpcl"] = pd.read_csv(models_dir / "dpcl" / "history.csv")
    for path in sorted((models_dir / "baselines").glob("*/history.csv")):
        histories[f"baseline-{path.parent.name}"] = pd.read_csv(path)
    return histories


def _example_figure(inputs: ReportInputs, method: str, path: Path) -> str | None:
    """Plot the example mixture that `separate` saved for `method`; returns its name."""
    from dpcl.audio import read_audio
    from dpcl.stft import Stft

    example_path = inputs.separated_dir / method / "example.npz"
    if not example_path.is_file():
        return None
    example = dict(np.load(example_path))
    name = str(example["name"])
    stft = Stft(n_fft=int(example["n_fft"]), hop_length=int(example["hop_length"]))

    def logspec(file: Path) -> np.ndarray:
        return np.log(np.abs(stft.analyse(read_audio(file)[0])) + 1e-6)

    n_sources = example["masks"].shape[0]
    plot_example({"mixture_logmag": example["logmag"], "masks": example["masks"],
                  "source_logmag": [logspec(inputs.mixtures_dir / f"s{c + 1}" / name) for c in range(n_sources)],
                  **({"embeddings": example["embeddings"], "active": example["active"],
                      "dominant": example["ibm_target"]} if "embeddings" in example else {})},
                 [logspec(inputs.separated_dir / method / f"s{c + 1}" / name) for c in range(n_sources)], path)
    return name


def _copy_audio(inputs: ReportInputs, methods: list[str], names: list[str], audio_dir: Path) -> list[dict]:
    """Copy mixture, references and each method's estimates of a few examples next to the page."""
    examples = []
    for index, name in enumerate(names):
        entry = {"name": name, "files": []}
        for label, folder in [("mixture", inputs.mixtures_dir / "mix"),
                              *[(f"reference {c}", inputs.mixtures_dir / f"s{c}") for c in (1, 2)]]:
            target = audio_dir / f"ex{index}_{label.replace(' ', '')}.wav"
            shutil.copyfile(folder / name, target)
            entry["files"].append((label, f"audio/{target.name}"))
        for method in methods:
            for c in (1, 2):
                source = inputs.separated_dir / method / f"s{c}" / name
                if source.is_file():
                    target = audio_dir / f"ex{index}_{method}_s{c}.wav"
                    shutil.copyfile(source, target)
                    entry["files"].append((f"{method} estimate {c}", f"audio/{target.name}"))
        examples.append(entry)
    return examples


def _rtf(summaries: dict[str, dict]) -> dict[str, float]:
    return {method: float(data["rtf"]) for method, data in summaries.items() if "rtf" in data}


def log_scores(tracking: TrackingConfig, summary: pd.DataFrame, scores_dir: Path, goal: dict,
               extras: dict[str, dict] | None = None) -> None:
    """One MLflow run per method (`scores-<method>`) with its mean scores, so the UI compares methods
    side by side with the trainings; the DPCL run carries the targets too, and every run its
    `extras` (seconds per mixture, cost growth exponents)."""
    from dpcl.tracking import Run

    for method, row in summary.iterrows():
        run = Run(tracking, f"scores-{method}")
        metrics = {key.replace(" ", "_"): float(value) for key, value in row.items() if np.isfinite(value)}
        metrics.update({k: float(v) for k, v in (extras or {}).get(str(method), {}).items() if np.isfinite(v)})
        if method == "dpcl":
            metrics.update({k: float(v) for k, v in goal.items() if isinstance(v, (int, float)) and np.isfinite(v)})
        run.log_metrics(metrics, step=0)
        run.set_tags({"kind": "scores", "method": str(method)})
        run.log_artifact(scores_dir / f"{method}.csv")
        run.finish()


def run_report(inputs: ReportInputs, site_dir: Path, metrics_path: Path, plots_path: Path,
               tracking: TrackingConfig | None = None) -> dict:
    """The stage: write the page, its tables, figures and audio, the metrics and the plot data;
    with `tracking`, the scores go to MLflow as well."""
    methods = _methods(inputs.scores_dir)
    scores = load_scores(inputs.scores_dir, methods)
    mixtures = pd.read_csv(inputs.mixtures_dir / "mixtures.csv")
    kinds = pair_kinds(mixtures)
    summary = summary_table(scores)
    paper = paper_table(headline_scores(scores, kinds)[0])
    breakdowns = {by: breakdown_table(scores, kinds, by)
                  for by in ("kind_pair", "sex_pair", "language_pair", "source_pair")}
    goal = targets(scores, kinds)
    separations = separation_summaries(inputs.separated_dir, methods)
    rtf = _rtf(separations)
    cost = load_cost(inputs.cost_dir)
    seconds = seconds_per_mixture(separations)
    spectral = spectral_table(scores, seconds)
    growth = cost_table(cost)
    histories = _histories(inputs.models_dir)
    rng = np.random.default_rng(0)  # which examples the page plays: seeded
    audio_names = sorted(rng.choice(mixtures["name"].to_numpy(), size=min(N_AUDIO_EXAMPLES, len(mixtures)),
                                    replace=False).tolist())
    with atomic_dir(site_dir) as staging:
        for folder in ("tables", "figures", "audio"):
            (staging / folder).mkdir()
        summary.to_csv(staging / "tables" / "summary.csv")
        paper.to_csv(staging / "tables" / "headline.csv", index=False)
        for by, table in breakdowns.items():
            table.to_csv(staging / "tables" / f"sdri_by_{by}.csv")
        spectral.to_csv(staging / "tables" / "spectral_vs_dpcl.csv")
        growth.to_csv(staging / "tables" / "cost_growth.csv")
        shutil.copyfile(_growth_png(inputs.cost_dir), staging / "figures" / "growth.png")
        plot_sdri_distribution(scores, staging / "figures" / "sdri_distribution.png")
        if histories:
            plot_training_curves(histories, staging / "figures" / "training_curves.png")
        example_method = "dpcl" if "dpcl" in methods else methods[0]
        example_name = _example_figure(inputs, example_method, staging / "figures" / "example.png")
        examples = _copy_audio(inputs, methods, audio_names, staging / "audio")
        (staging / "index.html").write_text(_page(paper, summary, breakdowns, goal, rtf, bool(histories), example_name,
                                                  example_method, examples, len(mixtures),
                                                  _spectral_section(spectral, growth, cost,
                                                                    cost_method(separations, "spectral"))))
    headline = {k: goal[k] for k in ("test_mixtures", "n_mixtures", "dpcl_sdri", "ibm_sdri", "dpcl_share_of_ibm")}
    metrics = {"headline": headline, "targets": goal, "rtf": rtf,
               "by_pair": {by: {str(c): (None if pd.isna(v) else float(v)) for c, v in table.loc["dpcl"].items()}
                           for by, table in breakdowns.items() if "dpcl" in table.index},
               "methods": {m: {k: round(float(v), 4) for k, v in row.items()}
                           for m, row in summary[[c for c in summary.columns if c.endswith("mean")]].iterrows()},
               "spectral": spectral_metrics(spectral, cost)}
    write_json(metrics_path, metrics)
    plot_rows = scores[["method", "name", "sdri"]].copy()
    plot_rows.to_csv(plots_path, index=False)
    if tracking is not None:
        log_scores(tracking, summary, inputs.scores_dir, goal, run_extras(separations, methods, seconds, cost))
    return metrics


def _page(paper: pd.DataFrame, summary: pd.DataFrame, breakdowns: dict[str, pd.DataFrame], goal: dict,
          rtf: dict[str, float],
          curves: bool, example_name: str | None, example_method: str, examples: list[dict], n_mixtures: int,
          spectral_section: str) -> str:
    def check(ok: bool | None) -> str:
        return "met" if ok else "NOT met"

    lines = [
        "<!doctype html><meta charset='utf-8'><title>dpcl report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4;color:#222}"
        "table.t{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}"
        "table.t td,table.t th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}"
        "table.t th{background:#f4f4f4}table.t td:first-child,table.t th:first-child{text-align:left}"
        "table.t tr.dpcl td{font-weight:bold}figure{display:inline-block;margin:4px}"
        "img{max-width:100%}</style>",
        "<h1>Deep Clustering against neuron-model baselines</h1>",
        f"<h2>Results on {_mixtures_words(goal)}</h2>",
        _paper_html(paper),
        f"<p>Means over {_mixtures_words(goal)} ({n_mixtures} in the test split): speakers unseen "
        "in training and validation. SDRi: bss_eval sources "
        "SDR improvement over the unprocessed mixture (params evaluate.backend: mir_eval, or "
        "fast_bss_eval's numpy backend, the same scores to 1e-3 dB); SI-SDRi likewise for SI-SDR. "
        "Oracles (ibm, irm) are the ceiling of masking methods.</p>",
        "<h2>Targets</h2><ul>",
        f"<li>On {_mixtures_words(goal)}: DPCL SDRi "
        f"{goal['dpcl_sdri']:.2f} dB = {100 * goal['dpcl_share_of_ibm']:.0f}% of the ideal binary "
        f"mask's {goal['ibm_sdri']:.2f} dB (target {100 * goal['share_target']:.0f}%): "
        f"<b>{check(goal['share_target_met'])}</b></li>",
    ]
    if "best_pit_baseline" in goal:
        lines.append(f"<li>DPCL is {goal['margin_over_best_pit_db']:.2f} dB above the best PIT baseline "
                     f"({html.escape(goal['best_pit_baseline'])}, {goal['best_pit_sdri']:.2f} dB; target "
                     f"{goal['margin_target_db']:.0f} dB): <b>{check(goal['margin_target_met'])}</b></li>")
    if "best_fixed_baseline" in goal:
        lines.append(f"<li>and {goal['margin_over_best_fixed_db']:.2f} dB above the best fixed-order baseline "
                     f"({html.escape(goal['best_fixed_baseline'])}, {goal['best_fixed_sdri']:.2f} dB)</li>")
    if rtf:
        lines.append("<li>Real-time factor of separation on this machine's CPU: "
                     + ", ".join(f"{html.escape(m)} {v:.3f}" for m, v in sorted(rtf.items())) + f" (target < {RTF_TARGET} for DPCL, on one thread)</li>")
    lines += ["</ul>", "<h2>SDRi (dB) by speaker pair, all test mixtures</h2>"]
    titles = {"sex_pair": "Sex of the two speakers", "kind_pair": "Real or synthetic speakers",
              "language_pair": "Languages", "source_pair": "Sources of the two speakers"}
    for by, table in breakdowns.items():
        lines += [f"<h3>{titles[by]}</h3>", _table_html(table)]
    lines += ["<h2>Every statistic, all test mixtures (dB)</h2>", _table_html(summary)]
    lines += ["<h2>Figures</h2>", "<img src='figures/sdri_distribution.png' alt='SDRi distribution per method'>"]
    if curves:
        lines.append("<img src='figures/training_curves.png' alt='training curves'>")
    if example_name:
        lines += [f"<h3>One test mixture, {html.escape(example_method)}: {html.escape(example_name)}</h3>",
                  "<img src='figures/example.png' alt='spectrograms, masks and embeddings of one mixture'>"]
    lines.append(spectral_section)
    lines.append("<h2>Listen</h2>")
    for entry in examples:
        lines.append(f"<h3>{html.escape(entry['name'])}</h3>")
        lines += [_audio(rel, label) for label, rel in entry["files"]]
    return "\n".join(lines) + "\n"


def _growth_png(cost_dir: Path) -> Path:
    path = Path(cost_dir) / "growth.png"
    if not path.is_file():
        raise DpclError(f"the cost-growth plot is missing at {path}: run the `cost` stage first")
    return path


def _spectral_section(table: pd.DataFrame, growth: pd.DataFrame, cost: dict, spectral_name: str) -> str:
    """The section "Spectral clustering vs Deep Clustering": the lecture's contrast, measured.
    `spectral_name` (spectral-knn or spectral-dense) says which affinity the pipeline's run used."""
    n_same = int(table.loc["spectral", "mixtures"])
    shown = table.rename(index={"spectral": f"spectral ({spectral_name.removeprefix('spectral-')})"})
    budget = cost.get("max_dense_gib")
    lines = [
        "<h2>Spectral clustering vs Deep Clustering</h2>",
        "<p><b>spectral</b>: classical Ng-Jordan-Weiss spectral clustering of each mixture's active "
        "time-frequency bins (log-magnitude patches and frequency position, Gaussian affinity, the "
        "normalised affinity's leading eigenvectors, k-means on their rows); nothing is learned. "
        "<b>dpcl</b>: k-means on the trained embeddings. <b>dpcl-spectral</b>: the same eigen-step on "
        "the embeddings through the low-rank trick (an SVD of N x (D + 1), never the N x N matrix). "
        f"spectral separates only {n_same} test mixtures spread over the split, so every method is also scored on "
        "exactly those.</p>",
        _table_html(shown.rename(columns=spectral_headers(n_same))),
        "<h3>Cost against mixture length</h3>",
        "<p>The test mixtures end to end, cut to each length; every method separates the same cuts "
        "(spectral-dense: the N x N Gaussian affinity, refused past spectral.max_dense_gib"
        + (f" = {budget:g} GiB" if budget is not None else "") + "; spectral-knn: the sparse k-nearest-"
        "neighbour affinity with ARPACK). Seconds and peak memory added, with the exponent of a "
        "power law fitted on a log-log scale: about 2 for an O(N^2) method, about 1 for O(N).</p>",
        _table_html(growth),
        "<img src='figures/growth.png' alt='seconds and peak memory against mixture length, log-log'>",
    ]
    return "\n".join(lines) + "\n"
