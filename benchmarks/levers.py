"""What each lever of the DPCL recipe buys on real, unseen voices, at an equal training budget.

    python benchmarks/levers.py                          # every lever, 150 batches x 4 epochs each
    python benchmarks/levers.py --levers stop17 recipe --epochs 6 --jobs 2
    python benchmarks/levers.py --levers dm --speakers 0.25 0.5 1.0  # SDRi against the share of training speakers

Reads the pipeline's data/corpus, data/mix and data/features (run `snakemake data/features` first).
Every variant trains from the same seed for the same number of batches (one 100-frame phase:
`--epochs` x `--batches`, batch 16, learning rate 1e-3), then separates the same test mixtures
(`--mixtures`, spread over the test split: real speakers unseen in training) with its own
`separate` settings and is scored with fast_bss_eval. The ideal binary mask on the same mixtures
gives each SDRi its share of the IBM's. Variants run in `--jobs` worker processes of one torch
thread each, side by side in one run, so their ratios are comparable even on a noisy machine;
`train_minutes` says what each batch costs (the 200-unit network takes about 0.6x the time of
the 300-unit one). Prints a table, writes benchmarks/results/levers.json. The compute lever
(two threads and the whole budget) is the main job itself (README, reports/metrics.json); what
more minutes would buy is benchmarks/learning_curves.py.

Levers (each row states all of its settings; read them in order):
  stop17       the real-speech corpus with the earlier recipe: BLSTM-300, binary loss weights,
               the trained weights themselves, hard k-means masks (fixed `tr` mixtures)
  magnitude    + loss weights by mixture magnitude (Wang et al. 2018)
  small        + BLSTM-200 (more batches per minute; at equal batches, what capacity costs)
  recipe       + moving average of the weights (ema_decay 0.998) and soft k-means masks
               (alpha 3): params.yaml's DPCL on the fixed mixtures
Every row is scored with hard and with soft masks (`sdri_hard`, `sdri_soft`): what the mask kind
alone is worth on the same embeddings; `sdri` is the row's own setting.
  dm           + dynamic mixing (fresh pairs every epoch)
  dm_aug       + augmentation (speed 0.9/1.1, tilt 0.3, telephone 0.2, level +-6 dB)
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"

AUGMENTATION = {"speed_factors": [0.9, 1.1], "speed_probability": 0.5, "tilt": 0.3, "telephone_probability": 0.2,
                "level_db": 6.0}


def _lever(hidden: int, loss_weights: str, ema: float, soft: bool, dm: bool = False, aug: bool = False
           ) -> dict[str, Any]:
    """A params overlay that states every setting a lever row compares."""
    dynamic: dict[str, Any] = {"enabled": dm}
    if aug:
        dynamic["augmentation"] = AUGMENTATION
    return {"dpcl": {"sizes": {"default": {"hidden": hidden}}, "loss_weights": loss_weights,
                     "training": {"ema_decay": ema, "dynamic_mixing": dynamic}},
            "separate": {"soft": soft}}


LEVERS: dict[str, dict[str, Any]] = {
    "stop17": _lever(300, "binary", 0.0, False),
    "magnitude": _lever(300, "magnitude", 0.0, False),
    "small": _lever(200, "magnitude", 0.0, False),
    "recipe": _lever(200, "magnitude", 0.998, True),
    "dm": _lever(200, "magnitude", 0.998, True, dm=True),
    "dm_aug": _lever(200, "magnitude", 0.998, True, dm=True, aug=True),
}


def variant_params(overlay: dict[str, Any], epochs: int, batches: int, tmp: Path) -> Any:
    """params.yaml with one 100-frame phase of the given budget and the lever's settings."""
    import yaml

    from dpcl.config import deep_merge, params_from_dict

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    training = {"phases": [{"chunk_frames": 100, "epochs": epochs, "batch_size": 16, "learning_rate": 1e-3}],
                "max_batches_per_epoch": batches, "early_stopping_patience": 0}
    merged = deep_merge(base, {"dpcl": {"training": training},
                               "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}",
                                            "artifact_location": str(tmp / "artifacts")}})
    return params_from_dict(deep_merge(merged, overlay))


def score_model(model_path: Path, count: int) -> dict[str, float]:
    """Mean SDRi of a DPCL model (k-means, hard and soft masks) and of the IBM on `count` test
    mixtures spread over the split (the same for every variant).

    `sdri` and `si_sdri` are those of the variant's own `separate` settings; `sdri_hard` and
    `sdri_soft` show what the mask kind alone is worth on the same embeddings.
    """
    from dataclasses import replace

    from dpcl.evaluate import score_mixture
    from dpcl.separate import Separator, read_stats
    from dpcl.validation import SdriScorer

    own = Separator(model_path, None)
    stats = read_stats(DATA / "features" / "stats.json", own.params.features.n_bins)
    test = SdriScorer(own.params, DATA / "mix", stats, count, split="tt")  # the mixtures and the IBM's ceiling
    engines = {kind: Separator(model_path, None, replace(own.config, soft=(kind == "soft")))
               for kind in ("hard", "soft")}
    rows = []
    for mix, sources, *_ in test.items:
        row = {}
        for kind, engine in engines.items():
            scores = score_mixture(mix, sources, engine.separate(mix, own.params.corpus.sample_rate),
                                   own.params.corpus.sample_rate, "fast")
            row[f"sdri_{kind}"], row[f"si_sdri_{kind}"] = scores["sdri"], scores["si_sdri"]
        rows.append(row)
    means = pd.DataFrame(rows).mean()
    ceiling = test.ibm()
    kind = "soft" if own.config.soft else "hard"
    return {"sdri": float(means[f"sdri_{kind}"]), "si_sdri": float(means[f"si_sdri_{kind}"]),
            "sdri_hard": float(means["sdri_hard"]), "sdri_soft": float(means["sdri_soft"]),
            "ibm_sdri": ceiling, "ibm_share": float(means[f"sdri_{kind}"] / ceiling)}


def keep_speakers(corpus: Path, share: float, out: Path) -> Path:
    """A corpus view with `share` of the training speakers (whole speakers, seeded), files linked."""
    manifest = pd.read_csv(corpus / "manifest.csv", dtype=str, keep_default_na=False)
    speakers = sorted(manifest.loc[manifest["split"] != "tt", "speaker"].unique())
    rng = np.random.default_rng(0)
    kept = set(rng.permutation(speakers)[: max(2, round(share * len(speakers)))])
    view = manifest[(manifest["split"] == "tt") | manifest["speaker"].isin(kept)]
    out.mkdir(parents=True, exist_ok=True)
    for rel in view["path"]:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(corpus / rel)
    view.to_csv(out / "manifest.csv", index=False)
    (out / "summary.json").write_text(json.dumps({"share": share, "speakers": len(kept)}))
    return out


def run_variant(job: tuple[str, dict[str, Any], int, int, int, float]) -> dict[str, Any]:
    """Worker: train one variant with one torch thread, score it; returns its row."""
    import torch

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    from dpcl.train_stages import train_dpcl

    name, overlay, epochs, batches, mixtures, share = job
    out = ROOT / "data" / "benchmarks" / "levers" / name
    out.mkdir(parents=True, exist_ok=True)
    params = variant_params(overlay, epochs, batches, out)
    corpus = DATA / "corpus" if share >= 1.0 else keep_speakers(DATA / "corpus", share, out / "corpus")
    state = train_dpcl(params, DATA / "features", out / "model", out / "checkpoints", corpus_dir=corpus,
                       mix_dir=DATA / "mix")
    # The epochs' own seconds, so a variant resumed from its finished checkpoint keeps its cost.
    seconds = sum(r.epoch_seconds for r in state.history)
    scores = score_model(out / "model" / "model.pt", mixtures)
    manifest = pd.read_csv(corpus / "manifest.csv", dtype=str, keep_default_na=False)
    training = manifest[manifest["split"] != "tt"]
    return {"variant": name, "train_minutes": round(seconds / 60, 2), "batches": epochs * batches,
            "training_speakers": int(training["speaker"].nunique()),
            "training_hours": round(float(pd.to_numeric(training["duration"]).sum()) / 3600, 2)
            if "duration" in training else None,
            "best_val_loss": min(r.val_loss for r in state.history), **{k: round(v, 3) for k, v in scores.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--speakers", nargs="+", type=float, default=None,
                        help="instead of levers: shares of training speakers (with the last lever given)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batches", type=int, default=150)
    parser.add_argument("--mixtures", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "levers.json")
    args = parser.parse_args()
    for stage in ("corpus", "mix", "features"):
        if not (DATA / stage).is_dir():
            raise SystemExit(f"data/{stage} not found: run `snakemake data/features` first")
    if args.speakers:
        lever = args.levers[-1]
        if not LEVERS[lever]["dpcl"]["training"]["dynamic_mixing"]["enabled"]:
            raise SystemExit("--speakers needs a dynamic-mixing lever (dm, dm_aug, ...): the fixed mixtures "
                             "are built from every training speaker")
        jobs = [(f"{lever}-speakers{share:g}", LEVERS[lever], args.epochs, args.batches, args.mixtures, share)
                for share in args.speakers]
    else:
        jobs = [(name, LEVERS[name], args.epochs, args.batches, args.mixtures, 1.0) for name in args.levers]
    context = multiprocessing.get_context("spawn")
    rows: list[dict[str, Any]] = []

    def write() -> None:  # after every finished row: a failure later keeps what was measured
        from dpcl.atomic import write_text

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text(args.out, json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                                         "epochs": args.epochs, "batches_per_epoch": args.batches,
                                         "test_mixtures": args.mixtures, "rows": rows}, indent=2) + "\n")

    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
        for row in pool.map(run_variant, jobs):
            rows.append(row)
            write()
            print(f"{row['variant']}: {json.dumps(row)}", flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
