"""What each lever of the DPCL recipe buys on real, unseen voices, at an equal training budget.

    python benchmarks/levers.py                          # every lever, 60 batches x 8 epochs each
    python benchmarks/levers.py --levers fixed dm --epochs 4 --jobs 2
    python benchmarks/levers.py --speakers 0.25 0.5 1.0  # SDRi against the share of training speakers

Reads the pipeline's data/corpus, data/mix and data/features (run `snakemake data/features` first).
Every variant trains the params.yaml DPCL from the same initial weights for the same number of
batches (one 100-frame phase: `--epochs` x `--batches`), then separates the same test mixtures
(`--mixtures`, spread over the test split: real speakers unseen in training) and is scored with
fast_bss_eval. The ideal binary mask on the same mixtures gives each SDRi its share of the IBM's.
Variants run in `--jobs` worker processes of one torch thread each, side by side in one run, so
their ratios are comparable even on a noisy machine. Prints a table, writes
benchmarks/results/levers.json.

Levers (each adds to the one before, as the issue orders them):
  fixed        the new real-speech corpus, fixed `tr` mixtures (no dynamic mixing)
  dm           + dynamic mixing (fresh pairs every epoch)
  dm_aug       + augmentation (speed 0.9/1.1, tilt 0.3, telephone 0.2, level +-6 dB)
  dm_aug_sdri  + best weights by validation SDRi instead of loss
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"

LEVERS: dict[str, dict[str, Any]] = {
    "fixed": {},
    "dm": {"dynamic_mixing": {"enabled": True}},
    "dm_aug": {"dynamic_mixing": {"enabled": True, "augmentation": {
        "speed_factors": [0.9, 1.1], "speed_probability": 0.5, "tilt": 0.3, "telephone_probability": 0.2,
        "level_db": 6.0}}},
    "dm_aug_sdri": {"dynamic_mixing": {"enabled": True, "augmentation": {
        "speed_factors": [0.9, 1.1], "speed_probability": 0.5, "tilt": 0.3, "telephone_probability": 0.2,
        "level_db": 6.0}}, "selection": "sdri"},
}


def variant_params(name: str, overlay: dict[str, Any], epochs: int, batches: int, tmp: Path) -> Any:
    """params.yaml's DPCL with one 100-frame phase of the given budget and the lever's keys."""
    import yaml

    from dpcl.config import deep_merge, params_from_dict

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    training = {"phases": [{"chunk_frames": 100, "epochs": epochs, "batch_size": 16, "learning_rate": 1e-3}],
                "max_batches_per_epoch": batches, "early_stopping_patience": 0, **overlay}
    merged = deep_merge(base, {"dpcl": {"training": training},
                               "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}",
                                            "artifact_location": str(tmp / "artifacts")}})
    return params_from_dict(merged)


def subset_names(count: int) -> list[str]:
    """`count` test mixtures spread over the split (the same for every variant)."""
    from dpcl.features import mixture_names, spread_subset

    return spread_subset(mixture_names(DATA / "mix", "min", "tt"), count)


def score_model(model_path: Path, names: list[str]) -> dict[str, float]:
    """Mean SDRi and SI-SDRi of a DPCL model (k-means) and of the IBM on the same test mixtures."""
    from dpcl.audio import read_audio
    from dpcl.evaluate import score_mixture
    from dpcl.separate import Separator, oracle_separation

    engine = Separator(model_path, None)
    split = DATA / "mix" / "min" / "tt"
    rows = []
    for name in names:
        mix, rate = read_audio(split / "mix" / name)
        sources = [read_audio(split / f"s{i}" / name)[0] for i in (1, 2)]
        dpcl = score_mixture(mix, np.stack(sources), engine.separate(mix, rate), rate, "fast")
        ibm = oracle_separation(mix, sources, "ibm", engine.stft, engine.features).estimates
        oracle = score_mixture(mix, np.stack(sources), ibm, rate, "fast")
        rows.append({"sdri": dpcl["sdri"], "si_sdri": dpcl["si_sdri"], "ibm_sdri": oracle["sdri"]})
    frame = pd.DataFrame(rows)
    return {"sdri": float(frame["sdri"].mean()), "si_sdri": float(frame["si_sdri"].mean()),
            "ibm_sdri": float(frame["ibm_sdri"].mean()),
            "ibm_share": float(frame["sdri"].mean() / frame["ibm_sdri"].mean())}


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
    from dpcl.training import train_dpcl

    name, overlay, epochs, batches, mixtures, share = job
    out = ROOT / "data" / "benchmarks" / "levers" / name
    out.mkdir(parents=True, exist_ok=True)
    params = variant_params(name, overlay, epochs, batches, out)
    corpus = DATA / "corpus" if share >= 1.0 else keep_speakers(DATA / "corpus", share, out / "corpus")
    started = time.perf_counter()
    state = train_dpcl(params, DATA / "features", out / "model", out / "checkpoints", corpus_dir=corpus,
                       mix_dir=DATA / "mix")
    seconds = time.perf_counter() - started
    scores = score_model(out / "model" / "model.pt", subset_names(mixtures))
    return {"variant": name, "train_minutes": round(seconds / 60, 2), "batches": epochs * batches,
            "best_val_loss": min(r.val_loss for r in state.history), **{k: round(v, 3) for k, v in scores.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levers", nargs="+", default=list(LEVERS), choices=list(LEVERS))
    parser.add_argument("--speakers", nargs="+", type=float, default=None,
                        help="instead of levers: shares of training speakers (with the last lever given)")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--mixtures", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "levers.json")
    args = parser.parse_args()
    for stage in ("corpus", "mix", "features"):
        if not (DATA / stage).is_dir():
            raise SystemExit(f"data/{stage} not found: run `snakemake data/features` first")
    if args.speakers:
        lever = args.levers[-1]
        if not LEVERS[lever].get("dynamic_mixing", {}).get("enabled"):
            raise SystemExit("--speakers needs a dynamic-mixing lever (dm, dm_aug, ...): the fixed mixtures "
                             "are built from every training speaker")
        jobs = [(f"{lever}-speakers{share:g}", LEVERS[lever], args.epochs, args.batches, args.mixtures, share)
                for share in args.speakers]
    else:
        jobs = [(name, LEVERS[name], args.epochs, args.batches, args.mixtures, 1.0) for name in args.levers]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
        rows = list(pool.map(run_variant, jobs))
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
                                    "epochs": args.epochs, "batches_per_epoch": args.batches,
                                    "test_mixtures": args.mixtures, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
