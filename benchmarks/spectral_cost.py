"""Cost growth of the clustering methods: seconds, peak memory and SDRi against mixture length.

    python benchmarks/spectral_cost.py                      # data/mix/min/tt, data/models/dpcl/model.pt, params.yaml
    python benchmarks/spectral_cost.py --profile ci         # profiles/ci.yaml merged over params.yaml
    python benchmarks/spectral_cost.py --lengths 1 2 4 8 16 --max-dense-gib 8   # further, on a bigger machine
    python benchmarks/spectral_cost.py --no-model           # spectral-dense, spectral-knn and the IBM only

The same measurement as the pipeline's `cost` stage and the report's plot
(dpcl.cost_growth.measure_growth: spectral-dense, spectral-knn, dpcl, dpcl-spectral, ibm on the
test mixtures end to end, cut to each length), so its numbers are the plot's numbers. Prints a
table and writes benchmarks/results/spectral_cost.json with the rows and the fitted growth
exponents. These machines are noisy: compare methods within one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from dpcl.config import Params, load_params, params_to_dict
from dpcl.cost_growth import growth_exponents, measure_growth

ROOT = Path(__file__).resolve().parents[1]


def resolve_params(profile: str, lengths: list[float] | None, repeats: int | None,
                   max_dense_gib: float | None) -> Params:
    """params.yaml with the profile merged over it, then the command line's overrides of `spectral`
    (validated like any params file: a bad length is refused with the key named)."""
    files = [ROOT / "params.yaml"] + ([] if profile == "default" else [ROOT / "profiles" / f"{profile}.yaml"])
    params = load_params(files)
    overrides = {key: value for key, value in (("cost_lengths_s", tuple(lengths) if lengths else None),
                                               ("cost_repeats", repeats), ("max_dense_gib", max_dense_gib))
                 if value is not None}
    return replace(params, spectral=replace(params.spectral, **overrides)) if overrides else params


def print_table(table: pd.DataFrame, exponents: dict[str, dict[str, float]]) -> None:
    """One line per method and length, then the exponents: what the report's plot shows."""
    print(f"{'method':<16}{'length s':>9}{'bins':>8}{'seconds':>10}{'peak MiB':>10}{'SDRi dB':>9}")
    for row in table.itertuples():
        if row.refused:
            print(f"{row.method:<16}{row.length_s:>9g}   refused: over the dense memory budget")
            continue
        print(f"{row.method:<16}{row.length_s:>9g}{int(row.active_bins):>8}{row.seconds:>10.3f}"
              f"{row.peak_bytes / 2**20:>10.1f}{row.sdri:>9.2f}")
    print("growth exponents (slope of log cost on log length):")
    for method, slopes in exponents.items():
        memory = f", memory {slopes['memory']:.2f}" if "memory" in slopes else ""
        print(f"  {method:<16} time {slopes['time']:.2f}{memory}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default",
                        help="profile in profiles/ merged over params.yaml, or 'default' (params.yaml alone)")
    parser.add_argument("--mixtures", type=Path, default=ROOT / "data" / "mix" / "min" / "tt",
                        help="the test split whose mixtures are cut to each length")
    parser.add_argument("--model", type=Path, default=ROOT / "data" / "models" / "dpcl" / "model.pt",
                        help="trained DPCL model.pt (for dpcl and dpcl-spectral)")
    parser.add_argument("--no-model", action="store_true", help="measure the model-free methods only")
    parser.add_argument("--lengths", type=float, nargs="+", default=None,
                        help="mixture lengths in seconds (default: spectral.cost_lengths_s)")
    parser.add_argument("--repeats", type=int, default=None, help="timings per point (default: spectral.cost_repeats)")
    parser.add_argument("--max-dense-gib", type=float, default=None,
                        help="dense affinity budget (default: spectral.max_dense_gib)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "spectral_cost.json")
    args = parser.parse_args()

    model = None if args.no_model else args.model
    if model is not None and not model.is_file():
        parser.error(f"no model at {model}: train it first (snakemake data/models/dpcl), pass --model, "
                     "or measure the model-free methods only with --no-model")
    params = resolve_params(args.profile, args.lengths, args.repeats, args.max_dense_gib)
    import torch

    torch.set_num_threads(args.threads)
    table = measure_growth(params, args.mixtures, model)
    exponents = growth_exponents(table)

    print(f"spectral cost growth, profile {args.profile!r}, {os.cpu_count()} cores, {args.threads} torch threads, "
          f"{args.mixtures}")
    print_table(table, exponents)
    result = {"profile": args.profile, "cores": os.cpu_count(), "machine": platform.machine(),
              "python": platform.python_version(), "torch_threads": args.threads, "mixtures": str(args.mixtures),
              "model": None if model is None else str(model), "spectral": params_to_dict(params)["spectral"],
              "exponents": exponents, "rows": table.replace({np.nan: None}).to_dict(orient="records")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
