"""Throughput of the first three stages: corpus build, mixing and features.

    python benchmarks/data_stages.py                      # CI profile, 3 repeats
    python benchmarks/data_stages.py --profile default    # the default corpus (downloads once)

Prints a table and writes benchmarks/results/data_stages.json. Each figure is the median of
`--repeats` runs made side by side in this one process, with the core count beside it: these
machines are noisy, so compare ratios from one run rather than figures from different days.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from dpcl.config import load_params
from dpcl.corpus import build_corpus
from dpcl.features import FeatureStore, run_features
from dpcl.mixing import run_mix

ROOT = Path(__file__).resolve().parents[1]


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="ci", help="profile in profiles/ merged over params.yaml, or 'default'")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "data_stages.json")
    args = parser.parse_args()

    files = [ROOT / "params.yaml"] + ([] if args.profile == "default" else [ROOT / "profiles" / f"{args.profile}.yaml"])
    params = load_params(files)
    # Keep downloads between repeats and runs: the benchmark measures building, not fetching.
    params = replace(params, corpus=replace(params.corpus, download_dir=str(ROOT / params.corpus.download_dir)))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_corpus(params.corpus, work / "warmup")  # fetch packages once, outside the timing
        shutil.rmtree(work / "warmup")
        for repeat in range(args.repeats):
            corpus, mix, feats = work / f"corpus{repeat}", work / f"mix{repeat}", work / f"features{repeat}"
            t_corpus = timed(lambda: build_corpus(params.corpus, corpus))
            t_mix = timed(lambda: run_mix(params, corpus, mix))
            t_feat = timed(lambda: run_features(params, mix, feats))
            manifest = pd.read_csv(corpus / "manifest.csv")
            n_mix = sum(len(pd.read_csv(mix / m / s / "mixtures.csv")) for m in params.mix.modes for s in ("tr", "cv", "tt"))
            frames = 0
            for split in ("tr", "cv", "tt"):
                store = FeatureStore(feats / f"{split}.h5", feats / "stats.json")
                frames += int(store.offsets[-1])
                store.close()
            rows.append({
                "corpus_s": t_corpus, "corpus_hours": manifest["duration"].sum() / 3600,
                "corpus_audio_s_per_s": manifest["duration"].sum() / t_corpus,
                "mix_s": t_mix, "mixtures_per_s": n_mix / t_mix,
                "features_s": t_feat, "frames_per_s": frames / t_feat,
            })
            for folder in (corpus, mix, feats):
                shutil.rmtree(folder)

    medians = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
    result = {"profile": args.profile, "cores": os.cpu_count(), "machine": platform.machine(),
              "python": platform.python_version(), "repeats": args.repeats, "median": medians, "runs": rows}
    print(f"data stages, profile {args.profile!r}, {os.cpu_count()} cores, median of {args.repeats}")
    print(f"{'metric':<24}{'median':>12}")
    for key, value in medians.items():
        print(f"{key:<24}{value:>12.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
