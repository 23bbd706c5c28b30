"""The minutes curve past the CPU's reach: DPCL trained on a GPU for many times the main job's
batches, scored on the real test split here.

Why: on the 2-core CPU the curve (benchmarks/learning_curves.py) reaches 2,400 batches, and its
slope (+0.6 dB per doubling) says 40% of the ideal binary mask needs roughly 8x that. A GPU runs
the same network 100x faster, so one short lease measures the batches the CPU cannot, instead of
extrapolating. A GPU machine here reaches no network (no Debian packages, no corpus stage), so the
work is split in three:

    python benchmarks/gpu_curve.py pack --fraction 0.25      # here: a share of the corpus as FLAC
    python benchmarks/gpu_curve.py train --marks 2400 4800 9600 19200 38400 --out DIR   # on the GPU
    python benchmarks/gpu_curve.py score --models DIR          # here: SDRi on the real test split

`pack` writes `.gpu/corpus` (a seeded `--fraction` of every training speaker's `tr` and `cv`
utterances, whole utterances, FLAC, with the corpus manifest's rows) and the training statistics
`.gpu/stats.json`: about 35 MB per tenth of the corpus, so a quarter travels in one call.
`train` runs the params.yaml recipe (network, loss weights, moving average, 16 x 100-frame
chunks at the first phase's learning rate, one open-ended phase as learning_curves.py does) with
dynamic mixing from the packed `tr` utterances (fresh pairs every epoch, `--workers` processes
mixing), validation loss on a fixed set drawn from the packed `cv` utterances, and saves the kept
weights at every mark as a model.pt `dpcl separate` reads. `score` separates `--mixtures`
real+real test mixtures of unseen speakers with each saved model, exactly as `dpcl separate`
does, scores them with the IBM beside them, prints a table and writes JSON.

The curve holds the data fixed at the packed share (the CPU curve trained on all of it, from the
fixed mixtures): its slope is what compute buys on that much speech, a lower bound for more.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PACK = ROOT / ".gpu"
BATCH = 16


def curve_params(epochs: int, batches_per_epoch: int, workers: int) -> Any:
    """params.yaml with one long 100-frame phase, dynamic mixing on, the loss as selection."""
    from dpcl.config import deep_merge, params_from_dict

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    first = base["dpcl"]["training"]["phases"][0]
    overlay = {"dpcl": {"training": {
        "phases": [{**first, "epochs": epochs}], "early_stopping_patience": 0, "selection": "loss",
        "max_batches_per_epoch": batches_per_epoch, "loader_workers": workers,
        "dynamic_mixing": {"enabled": True}}}}
    return params_from_dict(deep_merge(base, overlay))


def pack(fraction: float, seed: int) -> None:
    """A seeded share of every training speaker's tr and cv utterances, as FLAC, for a GPU lease."""
    import shutil

    import soundfile as sf

    manifest = pd.read_csv(DATA / "corpus" / "manifest.csv", dtype=str, keep_default_na=False)
    rows = manifest[manifest["split"].isin(["tr", "cv"])]
    rng = np.random.default_rng(seed)
    kept = []
    for _, utterances in rows.groupby(["speaker", "split"], sort=True):
        n = max(1, round(fraction * len(utterances)))
        kept.append(utterances.iloc[np.sort(rng.choice(len(utterances), n, replace=False))])
    chosen = pd.concat(kept)
    if PACK.exists():
        shutil.rmtree(PACK)
    (PACK / "corpus").mkdir(parents=True)
    paths = []
    for path in chosen["path"]:
        samples, rate = sf.read(DATA / "corpus" / path, dtype="int16")
        target = Path(path).with_suffix(".flac")
        (PACK / "corpus" / target.parent).mkdir(parents=True, exist_ok=True)
        sf.write(PACK / "corpus" / target, samples, rate, format="FLAC", subtype="PCM_16")
        paths.append(str(target))
    chosen = chosen.assign(path=paths)
    chosen.to_csv(PACK / "corpus" / "manifest.csv", index=False)
    shutil.copy(DATA / "features" / "stats.json", PACK / "stats.json")
    hours = chosen.assign(duration=chosen["duration"].astype(float)).groupby("split")["duration"].sum() / 3600
    size = sum(f.stat().st_size for f in PACK.rglob("*") if f.is_file()) / 2**20
    print(f"packed {len(chosen)} utterances of {chosen['speaker'].nunique()} speakers "
          f"(tr {hours.get('tr', 0):.2f} h, cv {hours.get('cv', 0):.2f} h), {size:.1f} MiB in {PACK}")


def train(marks: list[int], out: Path, workers: int, batches_per_epoch: int) -> None:
    from dpcl.dynamic_mixing import DynamicMixDataset, UtterancePool
    from dpcl.models.build import build_model
    from dpcl.objectives import DeepClusteringObjective
    from dpcl.separate import read_stats
    from dpcl.train_loop import fit, resolve_device
    from dpcl.train_stages import model_payload

    if any(mark % batches_per_epoch for mark in marks):
        raise SystemExit(f"--marks must be multiples of --epoch-batches ({batches_per_epoch})")
    params = curve_params(marks[-1] // batches_per_epoch, batches_per_epoch, workers)
    cfg = params.dpcl.training
    stats_json = json.loads((PACK / "stats.json").read_text())
    stats = read_stats(PACK / "stats.json", params.features.n_bins)
    pools = {split: UtterancePool.from_corpus(PACK / "corpus", params.corpus.sample_rate, split)
             for split in ("tr", "cv")}
    dm = cfg.dynamic_mixing

    def datasets(chunk_frames: int) -> tuple[Any, Any]:
        train_set = DynamicMixDataset(pools["tr"], batches_per_epoch * BATCH, chunk_frames, dm, params.features,
                                      stats, params.mix.max_gain_db, params.mix.peak, cfg.seed)
        train_set.measure_levels()
        # Fixed (the loop never calls set_epoch on it), so drawn once and kept in memory.
        validation = DynamicMixDataset(pools["cv"], cfg.max_val_batches * BATCH, chunk_frames, dm,
                                       params.features, stats, params.mix.max_gain_db, params.mix.peak,
                                       cfg.seed + 1)
        return train_set, [validation[i] for i in range(len(validation))]

    torch.manual_seed(cfg.seed)
    model = build_model(params, "dpcl", None)
    objective = DeepClusteringObjective(params.mix.n_speakers, params.dpcl.loss_weights)
    device = resolve_device(cfg.device)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    clock = {"train": 0.0, "start": time.perf_counter()}

    def write() -> None:
        (out / "gpu_curve_train.json").write_text(json.dumps({
            "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor(),
            "torch": torch.__version__, "workers": workers, "batch": BATCH,
            "training_utterances": len(pools["tr"].samples),
            "training_hours": round(sum(len(s) for s in pools["tr"].samples) / params.corpus.sample_rate / 3600, 3),
            "training_speakers": len(set(pools["tr"].speakers)), "rows": rows}, indent=2) + "\n")

    def probe(kept: torch.nn.Module, record: Any) -> None:
        clock["train"] += record.epoch_seconds
        batches = record.epoch * batches_per_epoch
        print(f"{batches} batches, {clock['train']:.0f} s: train {record.train_loss:.4f} "
              f"val {record.val_loss:.4f}", flush=True)
        if batches not in marks:
            return
        name = f"dpcl-gpu-{batches}"
        torch.save(model_payload(kept, params, "dpcl", None, None, name, stats_json), out / f"{name}.pt")
        rows.append({"batches": batches, "train_seconds": round(clock["train"], 1),
                     "wall_seconds": round(time.perf_counter() - clock["start"], 1),
                     "train_loss": round(record.train_loss, 5), "val_loss": round(record.val_loss, 5)})
        write()

    work = Path(os.environ.get("TMPDIR", "/tmp")) / "dpcl-gpu-curve"
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / "checkpoint.pt"
    checkpoint.unlink(missing_ok=True)
    fit(model, objective, datasets, cfg, checkpoint, {"gpu_curve": True}, desc="dpcl-gpu", probe=probe)
    write()


def score(models: Path, mixtures: int, out: Path) -> None:
    from dpcl.separate import Separator
    from dpcl.validation import SdriScorer

    files = sorted(models.glob("dpcl-gpu-*.pt"), key=lambda f: int(f.stem.rsplit("-", 1)[1]))
    if not files:
        raise SystemExit(f"no dpcl-gpu-*.pt in {models}: run `train` on the GPU first")
    trained = json.loads((models / "gpu_curve_train.json").read_text())
    # Each model loads as `dpcl separate` loads it: the file's own params and statistics, checked.
    separators = [Separator(file, None) for file in files]
    first = separators[0]
    test = SdriScorer(first.params, DATA / "mix", (first.mean, first.std), mixtures, split="tt")
    ceiling = test.ibm()
    by_batches = {row["batches"]: row for row in trained["rows"]}
    rows = []
    print(f"{'batches':>8} {'GPU s':>6} {'SDRi dB':>8} {'of IBM':>7}")
    for file, separator in zip(files, separators):
        batches = int(file.stem.rsplit("-", 1)[1])
        sdri = test(separator.model)
        rows.append({**by_batches.get(batches, {"batches": batches}), "test_sdri": round(sdri, 3),
                     "ibm_share": round(sdri / ceiling, 3)})
        print(f"{batches:>8} {rows[-1].get('train_seconds', float('nan')):>6.0f} {sdri:>8.2f} "
              f"{100 * sdri / ceiling:>6.1f}%", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**{k: v for k, v in trained.items() if k != "rows"},
                               "test_mixtures": len(test.items), "ibm_sdri": round(ceiling, 3),
                               "rows": rows}, indent=2) + "\n")
    print(f"IBM {ceiling:.2f} dB on {len(test.items)} real+real test mixtures; wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("pack", help="a share of data/corpus as FLAC in .gpu/ (run here)")
    packing.add_argument("--fraction", type=float, default=0.25)
    packing.add_argument("--seed", type=int, default=0)
    training = commands.add_parser("train", help="train on the GPU from .gpu/, saving models at the marks")
    training.add_argument("--marks", nargs="+", type=int, default=[2400, 4800, 9600, 19200, 38400])
    training.add_argument("--epoch-batches", type=int, default=1200)
    training.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    training.add_argument("--out", type=Path, required=True)
    scoring = commands.add_parser("score", help="score the saved models on the real test split (run here)")
    scoring.add_argument("--models", type=Path, required=True)
    scoring.add_argument("--mixtures", type=int, default=100)
    scoring.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_curve.json")
    args = parser.parse_args()
    if args.command == "pack":
        pack(args.fraction, args.seed)
    elif args.command == "train":
        torch.set_flush_denormal(True)
        train(sorted(args.marks), args.out, args.workers, args.epoch_batches)
    else:
        score(args.models, args.mixtures, args.out)


if __name__ == "__main__":
    main()
