"""Training throughput and peak memory of DPCL (default and paper sizes) and a baseline, and
the deep clustering loss in low-rank against naive form.

    python benchmarks/training.py                 # CPU (and CUDA too, when torch sees a GPU)
    python benchmarks/training.py --steps 5       # quicker

Each configuration runs in a fresh subprocess so its peak memory (max RSS on CPU,
torch.cuda.max_memory_allocated on GPU) is its own. Figures are medians over `--steps` timed
steps after one warm-up step, all measured side by side in this one run. Prints a table and
writes benchmarks/results/training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
N_BINS = 129
SIZES = {"dpcl-default": (300, 2), "dpcl-paper": (600, 4)}


def measure(kind: str, device: str, steps: int, batch: int, frames: int, threads: int) -> dict:
    """One configuration, in this process: time forward+backward+Adam steps or the loss alone."""
    import torch

    from dpcl.losses import deep_clustering_loss, naive_deep_clustering_loss
    from dpcl.models import DeepClusteringNet, FeedForwardMaskNet
    from dpcl.objectives import DeepClusteringObjective, MaskObjective

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    logmag = torch.randn(batch, frames, N_BINS, device=dev)
    batch_data = {"logmag": logmag, "mixture_mag": logmag.exp(), "weight": (torch.rand_like(logmag) > 0.3).float(),
                  "target": torch.randint(0, 2, logmag.shape, device=dev)}
    if kind.startswith("loss-"):
        embedding = torch.nn.functional.normalize(torch.randn(1, frames * N_BINS, 20, device=dev), dim=-1)
        target, weight = batch_data["target"][:1].reshape(1, -1), batch_data["weight"][:1].reshape(1, -1)
        loss_fn = naive_deep_clustering_loss if kind == "loss-naive" else deep_clustering_loss
        step = lambda: loss_fn(embedding, target, weight, 2)  # noqa: E731
    else:
        if kind.startswith("dpcl"):
            hidden, layers = SIZES[kind]
            model, objective = DeepClusteringNet(N_BINS, hidden, layers, 20), DeepClusteringObjective(2)
        else:
            model, objective = FeedForwardMaskNet(N_BINS, 3, (300, 300), 2), MaskObjective(2, "pit")
        model.to(dev)
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)

        def step():
            optimizer.zero_grad()
            loss = objective(model, batch_data)
            loss.backward()
            optimizer.step()
            return loss

    times = []
    for i in range(steps + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        float(step())
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:  # the first step warms caches and allocators up
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    n_frames = (1 if kind.startswith("loss-") else batch) * frames
    return {"kind": kind, "device": device, "threads": threads, "batch": batch, "frames": frames,
            "median_step_s": median, "frames_per_s": n_frames / median, "peak_memory_mb": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "training.json")
    parser.add_argument("--one", nargs=5, metavar=("KIND", "DEVICE", "BATCH", "FRAMES", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # child process: one configuration, JSON on stdout
        kind, device, batch, frames, steps = args.one
        print(json.dumps(measure(kind, device, int(steps), int(batch), int(frames), args.threads)))
        return

    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    plan = []
    for device in devices:
        plan += [("dpcl-default", device, 16, 100, args.steps), ("dpcl-paper", device, 16, 100, max(2, args.steps // 3)),
                 ("baseline-ff", device, 16, 100, args.steps), ("loss-lowrank", device, 1, 100, args.steps),
                 ("loss-naive", device, 1, 100, 2)]
    rows = []
    for kind, device, batch, frames, steps in plan:
        out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--one", kind, device,
                              str(batch), str(frames), str(steps)], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for device in devices:
        lowrank = next(r for r in rows if r["kind"] == "loss-lowrank" and r["device"] == device)
        naive = next(r for r in rows if r["kind"] == "loss-naive" and r["device"] == device)
        naive["slowdown_vs_lowrank"] = naive["median_step_s"] / lowrank["median_step_s"]

    print(f"training benchmark: {os.cpu_count()} cores, {args.threads} torch threads, batch x frames x {N_BINS} bins")
    print(f"{'kind':<14}{'device':<8}{'batch':>6}{'frames':>7}{'step s':>10}{'frames/s':>11}{'peak MB':>10}")
    for r in rows:
        print(f"{r['kind']:<14}{r['device']:<8}{r['batch']:>6}{r['frames']:>7}{r['median_step_s']:>10.4f}"
              f"{r['frames_per_s']:>11.0f}{r['peak_memory_mb']:>10.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cores": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
                                    "rows": rows}, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
