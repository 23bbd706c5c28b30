"""Stage `report`: tables, figures and audio that a person reads, plus DVC metrics and plots.

Inputs are the stage outputs already on disk: per-method score tables (`dpcl evaluate`), the
test split's mixtures.csv (speaker facts), training histories, separated audio and the
example mixture that `separate` saved. Outputs, all under `reports/`:

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
N_AUDIO_EXAMPLES = 3


@dataclass(frozen=True)
class ReportInputs:
    """Where the report reads from (paths come from the Snakefile / dvc.yaml)."""

    scores_dir: Path  # <method>.csv per method
    mixtures_dir: Path  # the scored split: mix/, s1/, s2/, mixtures.csv
    separated_dir: Path  # <method>/s1, s2, example.npz, timing.json
    models_dir: Path  # dpcl/history.csv, baselines/<run>/history.csv


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


def breakdown_table(scores: pd.DataFrame, kinds: pd.DataFrame, by: str) -> pd.DataFrame:
    """Mean SDRi per method and speaker-pair kind, with the number of mixtures per kind."""
    merged = scores.merge(kinds, on="name", how="left")
    table = merged.pivot_table(index="method", columns=by, values="sdri", aggfunc="mean").round(2)
    counts = merged[merged["method"] == merged["method"].iloc[0]][by].value_counts()
    table.columns = [f"{c} (n={counts.get(c, 0)})" for c in table.columns]
    return table


def targets(scores: pd.DataFrame) -> dict:
    """The project's targets on unseen speakers: DPCL >= 75% of the IBM's SDRi, and >= 3 dB over
    the best fixed-order neuron baseline."""
    means = scores.groupby("method")["sdri"].mean()
    fixed = means[[m for m in means.index if m.startswith("baseline-") and m.endswith("-fixed")]]
    result = {"dpcl_sdri": float(means.get("dpcl", np.nan)), "ibm_sdri": float(means.get("ibm", np.nan))}
    result["dpcl_share_of_ibm"] = result["dpcl_sdri"] / result["ibm_sdri"]
    result["share_target_met"] = bool(result["dpcl_share_of_ibm"] >= 0.75)
    if len(fixed):
        result["best_fixed_baseline"] = str(fixed.idxmax())
        result["best_fixed_sdri"] = float(fixed.max())
        result["margin_over_best_fixed_db"] = result["dpcl_sdri"] - result["best_fixed_sdri"]
        result["margin_target_met"] = bool(result["margin_over_best_fixed_db"] >= 3.0)
    return result


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
    return table.to_html(border=0, classes="t", na_rep="–", float_format=lambda v: f"{v:.2f}")


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


def _rtf(separated_dir: Path, methods: list[str]) -> dict[str, float]:
    out = {}
    for method in methods:
        summary = separated_dir / method / "summary.json"
        if summary.is_file():
            data = json.loads(summary.read_text())
            if "rtf" in data:
                out[method] = float(data["rtf"])
    return out


def log_scores(tracking: TrackingConfig, summary: pd.DataFrame, scores_dir: Path, goal: dict) -> None:
    """One MLflow run per method (`scores-<method>`) with its mean scores, so the UI compares methods
    side by side with the trainings; the DPCL run carries the targets too."""
    from dpcl.tracking import Run

    for method, row in summary.iterrows():
        run = Run(tracking, f"scores-{method}")
        metrics = {key.replace(" ", "_"): float(value) for key, value in row.items() if np.isfinite(value)}
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
    breakdowns = {by: breakdown_table(scores, kinds, by) for by in ("sex_pair", "kind_pair", "language_pair")}
    goal = targets(scores)
    rtf = _rtf(inputs.separated_dir, methods)
    histories = _histories(inputs.models_dir)
    rng = np.random.default_rng(0)  # which examples the page plays: seeded
    audio_names = sorted(rng.choice(mixtures["name"].to_numpy(), size=min(N_AUDIO_EXAMPLES, len(mixtures)),
                                    replace=False).tolist())
    with atomic_dir(site_dir) as staging:
        for folder in ("tables", "figures", "audio"):
            (staging / folder).mkdir()
        summary.to_csv(staging / "tables" / "summary.csv")
        for by, table in breakdowns.items():
            table.to_csv(staging / "tables" / f"sdri_by_{by}.csv")
        plot_sdri_distribution(scores, staging / "figures" / "sdri_distribution.png")
        if histories:
            plot_training_curves(histories, staging / "figures" / "training_curves.png")
        example_method = "dpcl" if "dpcl" in methods else methods[0]
        example_name = _example_figure(inputs, example_method, staging / "figures" / "example.png")
        examples = _copy_audio(inputs, methods, audio_names, staging / "audio")
        (staging / "index.html").write_text(_page(summary, breakdowns, goal, rtf, bool(histories), example_name,
                                                  example_method, examples, len(mixtures)))
    metrics = {"targets": goal, "rtf": rtf,
               "methods": {m: {k: round(float(v), 4) for k, v in row.items()}
                           for m, row in summary[[c for c in summary.columns if c.endswith("mean")]].iterrows()}}
    write_json(metrics_path, metrics)
    plot_rows = scores[["method", "name", "sdri"]].copy()
    plot_rows.to_csv(plots_path, index=False)
    if tracking is not None:
        log_scores(tracking, summary, inputs.scores_dir, goal)
    return metrics


def _page(summary: pd.DataFrame, breakdowns: dict[str, pd.DataFrame], goal: dict, rtf: dict[str, float],
          curves: bool, example_name: str | None, example_method: str, examples: list[dict], n_mixtures: int) -> str:
    def check(ok: bool | None) -> str:
        return "met" if ok else "NOT met"

    lines = [
        "<!doctype html><meta charset='utf-8'><title>dpcl report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
        "table.t{border-collapse:collapse;font-size:13px}table.t td,table.t th{padding:3px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}figure{display:inline-block;margin:4px}"
        "img{max-width:100%}</style>",
        "<h1>Deep Clustering against neuron-model baselines</h1>",
        f"<p>{n_mixtures} test mixtures of speakers unseen in training and validation. SDRi: mir_eval "
        "bss_eval_sources SDR improvement over the unprocessed mixture; SI-SDRi likewise for SI-SDR. "
        "Oracles (ibm, irm) are the ceiling of masking methods.</p>",
        "<h2>Targets</h2><ul>",
        f"<li>DPCL SDRi {goal['dpcl_sdri']:.2f} dB = {100 * goal['dpcl_share_of_ibm']:.0f}% of the ideal binary "
        f"mask's {goal['ibm_sdri']:.2f} dB (target 75%): <b>{check(goal['share_target_met'])}</b></li>",
    ]
    if "best_fixed_baseline" in goal:
        lines.append(f"<li>DPCL is {goal['margin_over_best_fixed_db']:.2f} dB above the best fixed-order baseline "
                     f"({html.escape(goal['best_fixed_baseline'])}, {goal['best_fixed_sdri']:.2f} dB; target 3 dB): "
                     f"<b>{check(goal['margin_target_met'])}</b></li>")
    if rtf:
        lines.append("<li>Real-time factor of separation on this machine's CPU: "
                     + ", ".join(f"{html.escape(m)} {v:.3f}" for m, v in sorted(rtf.items())) + " (target < 0.1 for DPCL)</li>")
    lines += ["</ul>", "<h2>All methods</h2>", _table_html(summary),
              "<h2>SDRi by speaker pair</h2>"]
    titles = {"sex_pair": "Sex of the two speakers", "kind_pair": "Real or synthetic speakers",
              "language_pair": "Languages"}
    for by, table in breakdowns.items():
        lines += [f"<h3>{titles[by]}</h3>", _table_html(table)]
    lines += ["<h2>Figures</h2>", "<img src='figures/sdri_distribution.png' alt='SDRi distribution per method'>"]
    if curves:
        lines.append("<img src='figures/training_curves.png' alt='training curves'>")
    if example_name:
        lines += [f"<h3>One test mixture, {html.escape(example_method)}: {html.escape(example_name)}</h3>",
                  "<img src='figures/example.png' alt='spectrograms, masks and embeddings of one mixture'>"]
    lines.append("<h2>Listen</h2>")
    for entry in examples:
        lines.append(f"<h3>{html.escape(entry['name'])}</h3>")
        lines += [_audio(rel, label) for label, rel in entry["files"]]
    return "\n".join(lines) + "\n"
