"""What more training would buy: DPCL's SDRi on the real test split against training minutes.

    python benchmarks/learning_curves.py                          # marks at 15/30/60/120 minutes
    python benchmarks/learning_curves.py --minutes 10 20 40 --threads 1 --mixtures 60

Reads the pipeline's data/corpus, data/mix and data/features (run `snakemake data/features` first).
One training of the params.yaml DPCL recipe (its network, loss weights, moving average, dynamic
mixing settings and selection), but with a single open-ended 100-frame phase at the first phase's
batch size and learning rate, so the curve is not bent by where a curriculum happens to switch.
After every epoch a probe (`train_loop.fit(probe=...)`, which does not change the training) adds up
the epochs' training seconds; each time a mark is passed it separates `--mixtures` test mixtures
(real speakers unseen in training, spread over the split) with the kept weights exactly as
`dpcl separate` does, and scores them with fast_bss_eval beside the ideal binary mask. A row
is written to the JSON after every mark, so a run stopped early keeps the marks it reached.
Minutes are this machine's: the `batches` column is the portable budget.

The other curve, SDRi against the share of real training speakers at a short fixed budget, is
`python benchmarks/levers.py --levers dm --speakers 0.25 0.5 1.0`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


class CurveDone(Exception):
    """Raised by the probe after the last mark: the training has nothing more to show."""


def curve_params(threads_dir: Path, epochs: int) -> Any:
    """params.yaml with one long 100-frame phase; MLflow runs go to a scratch store."""
    from dpcl.config import deep_merge, params_from_dict

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    first = base["dpcl"]["training"]["phases"][0]
    overlay = {"dpcl": {"training": {"phases": [{**first, "epochs": epochs}], "early_stopping_patience": 0}},
               "tracking": {"uri": f"sqlite:///{threads_dir / 'mlflow.db'}",
                            "artifact_location": str(threads_dir / "artifacts")}}
    return params_from_dict(deep_merge(base, overlay))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", nargs="+", type=float, default=[15, 30, 60, 120])
    parser.add_argument("--mixtures", type=int, default=100, help="test mixtures scored at each mark")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the main job's DPCL uses 2)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "learning_curves.json")
    parser.add_argument("--resume", action="store_true",
                        help="continue the last run's training and its JSON to later marks (same recipe)")
    args = parser.parse_args()
    for stage in ("corpus", "mix", "features"):
        if not (DATA / stage).is_dir():
            raise SystemExit(f"data/{stage} not found: run `snakemake data/features` first")
    marks = sorted(args.minutes)
    if marks[0] <= 0:
        raise SystemExit("--minutes: marks must be > 0")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    from dpcl.config import params_to_dict
    from dpcl.separate import read_stats
    from dpcl.train_stages import train_dpcl
    from dpcl.validation import SdriScorer

    work = DATA / "benchmarks" / "learning_curves"
    for stale in (work / "checkpoints", work / "model"):  # a fresh training unless asked to resume
        if stale.exists() and not (args.resume and stale.name == "checkpoints"):
            import shutil

            shutil.rmtree(stale)
    work.mkdir(parents=True, exist_ok=True)
    params = curve_params(work, epochs=10_000)
    stats = read_stats(DATA / "features" / "stats.json", params.features.n_bins)
    test = SdriScorer(params, DATA / "mix", stats, args.mixtures, split="tt")
    ceiling = test.ibm()
    cfg = params.dpcl.training
    batches_per_epoch = cfg.max_batches_per_epoch
    rows: list[dict[str, Any]] = []
    seconds = {"train": 0.0}
    if args.resume:  # the marks reached so far, and the training seconds the checkpoint has behind it
        rows = [row for row in json.loads(args.out.read_text())["rows"] if row["mark_minutes"] in marks]
        checkpoints = list((work / "checkpoints").glob("*.pt"))
        if len(checkpoints) != 1 or not rows:
            raise SystemExit("--resume needs the last run's checkpoint and JSON: run without it first")
        history = torch.load(checkpoints[0], map_location="cpu", weights_only=False)["state"]["history"]
        seconds["train"] = sum(record["epoch_seconds"] for record in history)
    started = time.perf_counter()

    def write() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "machine": {"cpus": os.cpu_count(), "threads": args.threads, "platform": platform.platform()},
            "recipe": {"dpcl": params_to_dict(params.dpcl), "separate": params_to_dict(params.separate)},
            "test_mixtures": len(test.items), "ibm_sdri": round(ceiling, 3), "rows": rows}, indent=2) + "\n")

    def probe(model: torch.nn.Module, record: Any) -> None:
        seconds["train"] += record.epoch_seconds
        minutes = seconds["train"] / 60
        if minutes < marks[len(rows)]:
            return
        sdri = test(model)
        rows.append({"mark_minutes": marks[len(rows)], "train_minutes": round(minutes, 2),
                     "batches": (record.step + 1) * batches_per_epoch, "val_sdri": round(record.val_sdri, 3),
                     "test_sdri": round(sdri, 3), "ibm_share": round(sdri / ceiling, 3),
                     "wall_minutes": round((time.perf_counter() - started) / 60, 2)})
        print(f"{minutes:6.1f} min, {rows[-1]['batches']} batches: test SDRi {sdri:.2f} dB "
              f"({100 * sdri / ceiling:.1f}% of the IBM's {ceiling:.2f}), cv {record.val_sdri:.2f}", flush=True)
        write()
        if len(rows) == len(marks):
            raise CurveDone

    try:
        train_dpcl(params, DATA / "features", work / "model", work / "checkpoints", corpus_dir=DATA / "corpus",
                   mix_dir=DATA / "mix", probe=probe)
    except CurveDone:
        pass
    write()
    print(f"wrote {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
