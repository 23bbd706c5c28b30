"""GPU check: train the paper-size DPCL on CUDA in fp32 and bf16, and check CUDA against the CPU.

Why: every number in this project was measured on a 2-core CPU. The `paper` size (4 x BLSTM-600,
params.yaml `dpcl.sizes.paper`) is meant for GPUs, and `training.device: auto` and
`mixed_precision: true` (bfloat16 autocast) are code paths no CPU run exercises. This one command
tells a GPU owner, in a few minutes, whether they work and what they cost:

    python benchmarks/gpu_check.py                          # 300 steps per mode, batch 64 x 100 frames
    python benchmarks/gpu_check.py --steps 100 --batch 32 --out /tmp/gpu_check.json
    python benchmarks/gpu_check.py --cpu-smoke              # the same code on CPU, tiny model, 2 steps

It needs a CUDA build of torch (the project pins the CPU wheel of torch 2.13.0; install the same
version from a CUDA index, e.g. `pip install torch==2.13.0 --index-url
https://download.pytorch.org/whl/cu128`). What it does:

1. CPU vs CUDA: the same weights (one state_dict copied), the same batch, float32, eval mode (no
   dropout, whose random masks differ between devices): the DPCL loss once on each device. The
   CUDA side runs with TF32 off (`fp32_precision = "ieee"`); the check fails (exit 1) when the
   relative difference exceeds 1e-4. Why 1e-4: float32 keeps ~7 digits, and cuDNN's LSTM and the
   CPU's LSTM sum the same products in a different order (blocked GEMMs, fused gates), which over
   100 recurrent steps and 4 layers is expected to move a loss by about 1e-6 relative (a
   rounding of 6e-8 per operation, grown by the depth; an estimate, not yet measured on a GPU);
   a real fault (weights in the wrong layout, dropout left on, a wrong bin order) changes the
   loss in its first or second digit. The same
   difference with torch's default settings (cuDNN's LSTM may use TF32, 10-bit mantissa, on
   Ampere and later) is reported beside it, not judged.
2. Training: `--steps` Adam steps (the optimiser, learning rate, gradient clipping, loss weights
   and objective of `train-dpcl`, read from params.yaml) on synthetic batches of the feature
   shape (129 bins, `--frames`-frame chunks, `--batch` chunks), once in float32 (torch's default
   precision settings, as `train-dpcl` runs) and once under bfloat16 autocast (what
   `mixed_precision: true` does). Each mode starts from the same seeded weights and is timed after
   `--warmup` untimed steps. The synthetic target of a bin is the sign of its input, which the
   network can learn: a final loss well below the first says the training works.

It prints a table (mode, steps/s, frames/s, peak GPU memory in GiB, first and final loss, and the
dtype the LSTMs and the linear layer really output: torch's autocast wrapper for cuDNN RNNs
(aten/src/ATen/cudnn/AutocastRNN.cpp) has cast them to float16 whatever the autocast dtype, so
bf16 may mean float16 LSTMs) and writes JSON (device, torch, CUDA and cuDNN versions, the rows,
the check) to `--out`, default benchmarks/results/gpu_check.json. Exit status 1 when the check
fails, a mode raises or a loss is not finite. Without CUDA and without `--cpu-smoke` it prints one
line, writes {"cuda": false, ...} and exits 0: nothing is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from dpcl.config import Params, load_params
from dpcl.models.build import build_model
from dpcl.objectives import DeepClusteringObjective
from dpcl.train_loop import autocast_enabled, make_optimizer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "gpu_check.json"
RELATIVE_TOLERANCE = 1e-4  # CPU vs CUDA loss, float32 without TF32 (see the module docstring)
NO_CUDA = "no CUDA device: the GPU check needs one; nothing measured"
POOL = 4  # distinct synthetic batches the training cycles through
MODES = ("fp32", "bf16")

Batch = dict[str, torch.Tensor]


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one run measures; `--cpu-smoke` shrinks it to seconds on a CPU."""

    device: str
    size: str
    steps: int
    warmup: int
    batch: int
    frames: int
    check_batch: int
    seed: int
    hidden: int | None = None  # overrides of the named size (the smoke run's tiny network)
    layers: int | None = None
    smoke: bool = False


# --------------------------------------------------------------------------- model and data


def sized_params(params: Params, size: str, hidden: int | None = None, layers: int | None = None) -> Params:
    """`params` with `dpcl.size` set to `size`, that size's hidden units or layers optionally replaced."""
    chosen = getattr(params.dpcl.sizes, size)
    chosen = dataclasses.replace(chosen, hidden=hidden or chosen.hidden, layers=layers or chosen.layers)
    sizes = dataclasses.replace(params.dpcl.sizes, **{size: chosen})
    return dataclasses.replace(params, dpcl=dataclasses.replace(params.dpcl, size=size, sizes=sizes))


def fresh_model(params: Params, seed: int) -> nn.Module:
    """The DPCL network of `params`, through the project's builder, with seeded initial weights (on CPU)."""
    torch.manual_seed(seed)
    return build_model(params, "dpcl")


def make_objective(params: Params) -> DeepClusteringObjective:
    """The objective `train-dpcl` minimises, with params' loss weights."""
    return DeepClusteringObjective(params.mix.n_speakers, params.dpcl.loss_weights)


def synthetic_batch(batch: int, frames: int, n_bins: int, seed: int) -> Batch:
    """A (B, T, F) batch as ChunkDataset gives it, drawn on the CPU so every device sees the same numbers.

    Target: the bin's sign (learnable); weight: 0 for the faintest bins, as silent bins are.
    """
    generator = torch.Generator().manual_seed(seed)
    logmag = torch.randn(batch, frames, n_bins, generator=generator)
    return {"logmag": logmag, "mixture_mag": logmag.exp(), "target": (logmag > 0).long(),
            "weight": (logmag > -1.5).float()}


def to_device(batch: Batch, device: torch.device) -> Batch:
    return {key: value.to(device) for key, value in batch.items()}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- device helpers


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    """Peak memory torch allocated on a CUDA device since the last reset; None on CPU (not measured)."""
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def precision_settings() -> dict[str, str]:
    """torch's float32 precision settings for cuDNN's RNNs and cuBLAS matmuls ('tf32', 'ieee', 'none')."""
    return {"cudnn_rnn": torch.backends.cudnn.rnn.fp32_precision,
            "cuda_matmul": torch.backends.cuda.matmul.fp32_precision}


@contextlib.contextmanager
def strict_float32() -> Iterator[None]:
    """TF32 off for cuDNN's RNNs and cuBLAS matmuls, restored afterwards (the new API only: mixing the
    legacy `allow_tf32` flags with it makes torch refuse to read them)."""
    saved = precision_settings()
    torch.backends.cudnn.rnn.fp32_precision = "ieee"
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        torch.backends.cudnn.rnn.fp32_precision = saved["cudnn_rnn"]
        torch.backends.cuda.matmul.fp32_precision = saved["cuda_matmul"]


def device_description(device: torch.device) -> dict[str, Any]:
    cuda = device.type == "cuda"
    return {"cuda": torch.cuda.is_available(), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
            "torch": torch.__version__, "cuda_version": torch.version.cuda,
            "cudnn_version": torch.backends.cudnn.version() if cuda else None}


# --------------------------------------------------------------------------- CPU vs CUDA


def eval_loss(model: nn.Module, objective: DeepClusteringObjective, batch: Batch) -> float:
    """The loss of one batch in eval mode (no dropout), float32, no gradients."""
    model.eval()
    with torch.no_grad():
        return float(objective(model, batch))


def relative_difference(reference: float, other: float) -> tuple[float, float]:
    """(|a - b|, |a - b| / |a|)."""
    diff = abs(reference - other)
    return diff, diff / max(abs(reference), torch.finfo(torch.float32).tiny)


def device_agreement(params: Params, settings: Settings, device: torch.device) -> dict[str, Any]:
    """The same weights and batch on the CPU and on `device`: losses, differences, verdict."""
    objective = make_objective(params)
    reference = fresh_model(params, settings.seed)
    other = fresh_model(params, settings.seed + 1)  # other initial weights, replaced by the copy below
    other.load_state_dict(reference.state_dict())
    other.to(device)
    batch = synthetic_batch(settings.check_batch, settings.frames, params.features.n_bins, settings.seed + 100)
    with strict_float32():
        cpu_loss = eval_loss(reference, objective, batch)
        strict_loss = eval_loss(other, objective, to_device(batch, device))
    default_loss = eval_loss(other, objective, to_device(batch, device))  # torch's default precision settings
    abs_diff, rel_diff = relative_difference(cpu_loss, strict_loss)
    default_abs, default_rel = relative_difference(cpu_loss, default_loss)
    return {"device": str(device), "batch": settings.check_batch, "frames": settings.frames,
            "cpu_loss": cpu_loss, "device_loss": strict_loss, "abs_diff": abs_diff, "rel_diff": rel_diff,
            "tolerance": RELATIVE_TOLERANCE, "passed": rel_diff <= RELATIVE_TOLERANCE,
            "default_precision": {"settings": precision_settings(), "device_loss": default_loss,
                                  "abs_diff": default_abs, "rel_diff": default_rel}}


# --------------------------------------------------------------------------- training throughput


@contextlib.contextmanager
def output_dtypes(model: nn.Module) -> Iterator[dict[str, str]]:
    """The dtype each kind of layer (LSTM, Linear) outputs inside the block: what autocast really ran.

    Measured, not assumed: torch's autocast wrapper for cuDNN RNNs has cast them to float16 whatever
    the autocast dtype, so under bfloat16 autocast the LSTMs may run in float16.
    """
    seen: dict[str, str] = {}

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        tensor = output[0] if isinstance(output, tuple) else output
        seen.setdefault(type(module).__name__, str(tensor.dtype).removeprefix("torch."))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.LSTM, nn.Linear))]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def train_step(model: nn.Module, objective: DeepClusteringObjective, batch: Batch,
               optimizer: torch.optim.Optimizer, grad_clip: float, bf16: bool) -> torch.Tensor:
    """One step as train_loop.fit takes it: autocast forward, backward, clipping, optimiser step.

    Without fit's per-step check that the loss is finite (it waits for the GPU every step); the
    final loss is checked instead.
    """
    optimizer.zero_grad(set_to_none=True)
    device_type = batch["logmag"].device.type
    with torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=bf16):
        loss = objective(model, batch)
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.detach()


def measure_mode(mode: str, params: Params, settings: Settings, batches: list[Batch],
                 device: torch.device) -> dict[str, Any]:
    """Train a fresh seeded model for warm-up + `steps` steps in `mode`; time the last `steps`."""
    cfg = params.dpcl.training
    model = fresh_model(params, settings.seed).to(device).train()
    objective = make_objective(params)
    optimizer = make_optimizer(cfg, model.parameters(), cfg.phases[0].learning_rate)
    # train-dpcl's own decision for `mixed_precision: true` (bf16) or false (fp32): CUDA only.
    bf16 = autocast_enabled(dataclasses.replace(cfg, mixed_precision=mode == "bf16"), device)
    step = lambda i: train_step(model, objective, batches[i % len(batches)], optimizer,  # noqa: E731
                                cfg.grad_clip, bf16)
    reset_peak_memory(device)
    with output_dtypes(model) as dtypes:
        first_loss = float(step(0))
    for i in range(1, settings.warmup):
        step(i)
    synchronize(device)
    start = time.perf_counter()
    for i in range(settings.steps):
        loss = step(settings.warmup + i)
    synchronize(device)
    seconds = time.perf_counter() - start
    final_loss = float(loss)
    return {"mode": mode, "autocast_bf16": bf16, "output_dtypes": dtypes, "steps": settings.steps,
            "seconds": seconds, "steps_per_s": settings.steps / seconds,
            "frames_per_s": settings.steps * settings.batch * settings.frames / seconds,
            "peak_memory_gib": peak_memory_gib(device), "first_loss": first_loss, "final_loss": final_loss,
            "finite": math.isfinite(final_loss)}


def measure_modes(params: Params, settings: Settings, device: torch.device) -> list[dict[str, Any]]:
    """Both modes; a mode that raises is recorded with its error, not the end of the run."""
    batches = [to_device(synthetic_batch(settings.batch, settings.frames, params.features.n_bins, settings.seed + i),
                         device) for i in range(POOL)]
    rows = []
    for mode in MODES:
        try:
            rows.append(measure_mode(mode, params, settings, batches, device))
        except RuntimeError as error:  # e.g. an op without a bfloat16 kernel on this GPU
            rows.append({"mode": mode, "error": f"{type(error).__name__}: {error}".splitlines()[0]})
    return rows


# --------------------------------------------------------------------------- report


def failures(result: dict[str, Any]) -> list[str]:
    """One short reason per failed item; empty when everything passed."""
    out = []
    check = result["check"]
    if not check["passed"]:
        out.append(f"CPU and {check['device']} losses differ by relative {check['rel_diff']:.2e} > "
                   f"{check['tolerance']:.0e} ({check['cpu_loss']:.7g} vs {check['device_loss']:.7g})")
    for row in result["rows"]:
        if "error" in row:
            out.append(f"{row['mode']} training raised {row['error']}")
        elif not row["finite"]:
            out.append(f"{row['mode']} training ended with loss {row['final_loss']}")
    return out


def dtype_pair(dtypes: dict[str, str]) -> str:
    return f"{dtypes.get('LSTM', '?')}/{dtypes.get('Linear', '?')}"


def print_report(result: dict[str, Any]) -> None:
    model, check = result["model"], result["check"]
    print(f"GPU check on {result['device_name']} ({result['device']}), torch {result['torch']}, "
          f"CUDA {result['cuda_version']}, cuDNN {result['cudnn_version']}")
    print(f"DPCL {model['size']}: {model['layers']} x BLSTM-{model['hidden']}, D = {model['embedding_dim']}, "
          f"{model['parameters'] / 1e6:.1f} M parameters; batch {result['batch']} x {result['frames']} frames "
          f"x {model['n_bins']} bins, {result['steps']} timed steps after {result['warmup']} warm-up")
    print(f"{'mode':<6}{'steps/s':>10}{'frames/s':>12}{'peak GiB':>10}{'first loss':>12}{'final loss':>12}"
          "  LSTM/linear dtype")
    for row in result["rows"]:
        if "error" in row:
            print(f"{row['mode']:<6}  failed: {row['error']}")
            continue
        peak = "-" if row["peak_memory_gib"] is None else f"{row['peak_memory_gib']:.2f}"
        print(f"{row['mode']:<6}{row['steps_per_s']:>10.2f}{row['frames_per_s']:>12.0f}{peak:>10}"
              f"{row['first_loss']:>12.4f}{row['final_loss']:>12.4f}  {dtype_pair(row['output_dtypes'])}")
    if any(row["mode"] == "bf16" and not row.get("autocast_bf16", True) for row in result["rows"]):
        print("  (bf16 autocast is CUDA-only, as in train_loop: on this device the bf16 row ran in float32)")
    default = check["default_precision"]
    print(f"CPU vs {check['device']} loss (float32, TF32 off, eval mode, batch {check['batch']}): "
          f"{check['cpu_loss']:.7g} vs {check['device_loss']:.7g}, abs {check['abs_diff']:.2e}, "
          f"rel {check['rel_diff']:.2e} (tolerance {check['tolerance']:.0e}): "
          f"{'ok' if check['passed'] else 'FAILED'}")
    print(f"  with torch's default precision settings {default['settings']}: rel {default['rel_diff']:.2e} "
          "(reported, not judged)")


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def run_check(params: Params, settings: Settings) -> dict[str, Any]:
    """Everything measured on `settings.device`: the agreement check first, then both training modes."""
    device = torch.device(settings.device)
    params = sized_params(params, settings.size, settings.hidden, settings.layers)
    network, cfg = params.dpcl.network, params.dpcl.training
    start = time.perf_counter()
    result: dict[str, Any] = device_description(device)
    result.update(smoke=settings.smoke, batch=settings.batch, frames=settings.frames, steps=settings.steps,
                  warmup=settings.warmup, seed=settings.seed)
    result["model"] = {"size": settings.size, "hidden": network.hidden, "layers": network.layers,
                       "dropout": network.dropout, "embedding_dim": params.dpcl.embedding_dim,
                       "n_bins": params.features.n_bins, "parameters": parameter_count(fresh_model(params, 0))}
    result["training"] = {"optimizer": cfg.optimizer, "learning_rate": cfg.phases[0].learning_rate,
                          "grad_clip": cfg.grad_clip, "loss_weights": params.dpcl.loss_weights,
                          "precision_settings": precision_settings()}
    result["check"] = device_agreement(params, settings, device)
    result["rows"] = measure_modes(params, settings, device)
    result["seconds"] = time.perf_counter() - start
    result["failures"] = failures(result)
    result["passed"] = not result["failures"]
    return result


# --------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed training steps per mode (default 300)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (cuDNN and allocator warm-up)")
    parser.add_argument("--batch", type=int, default=64, help="chunks per training batch (default 64)")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per chunk (default: the first phase's chunk_frames, 100)")
    parser.add_argument("--check-batch", type=int, default=8, help="chunks in the CPU vs CUDA batch (default 8)")
    parser.add_argument("--size", choices=("paper", "default"), default="paper", help="dpcl.sizes entry (paper)")
    parser.add_argument("--params", type=Path, nargs="+", default=[ROOT / "params.yaml"],
                        help="params files, later merged over earlier (default: params.yaml)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="run the same code on CPU with a tiny network for 2 steps (tests the script)")
    args = parser.parse_args(argv)
    for name in ("steps", "batch", "check_batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.frames is not None and args.frames < 1:
        parser.error(f"--frames must be >= 1, got {args.frames}")
    return args


def settings_from(args: argparse.Namespace, params: Params) -> Settings:
    frames = args.frames or params.dpcl.training.phases[0].chunk_frames
    if args.cpu_smoke:
        return Settings(device="cpu", size=args.size, steps=2, warmup=1, batch=2, frames=min(frames, 12),
                        check_batch=2, seed=args.seed, hidden=8, layers=2, smoke=True)
    return Settings(device="cuda", size=args.size, steps=args.steps, warmup=max(1, args.warmup), batch=args.batch,
                    frames=frames, check_batch=args.check_batch, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.cpu_smoke and not torch.cuda.is_available():
        print(NO_CUDA)
        write_json(args.out, {"cuda": False, "torch": torch.__version__, "cuda_version": torch.version.cuda,
                              "measured": False})
        return 0
    params = load_params(args.params)
    result = run_check(params, settings_from(args, params))
    print_report(result)
    write_json(args.out, result)
    print(f"written to {args.out}")
    if result["failures"]:
        print(f"GPU check FAILED: {'; '.join(result['failures'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
