"""Stages `train_dpcl` and `train_baseline`: build the model, fit it, save it, track it in MLflow.

Output folder of a training (DVC- and Snakemake-owned):
    model.pt       state dict + the resolved params + kind/transfer/objective (see models.build)
    history.csv    one row per epoch
    metrics.json   best validation loss, epochs, seconds, device
The resumable checkpoint lives in `checkpoint_dir`, outside the output, so a failed or
killed job (whose outputs Snakemake deletes) keeps every finished epoch.

Started by `torchrun --nproc_per_node N`, the stage joins a process group for the training
(`distributed.py`); rank 0 alone writes the output folder and talks to MLflow, the other
ranks only train.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn

from dpcl import distributed
from dpcl.atomic import atomic_dir, write_json
from torch.utils.data import Dataset

from dpcl.chunks import ChunkDataset
from dpcl.dynamic_mixing import DynamicMixDataset, UtterancePool
from dpcl.config import Params, TrainingConfig, params_to_dict
from dpcl.errors import DpclError
from dpcl.models.build import build_model
from dpcl.objectives import DeepClusteringObjective, MaskObjective
from dpcl.tracking import Run, data_version, git_commit
from dpcl.separate import read_stats
from dpcl.train_loop import EpochRecord, Objective, TrainState, fit, resolve_device
from dpcl.validation import SdriScorer

log = logging.getLogger(__name__)


def train_dpcl(params: Params, features_dir: Path, out_dir: Path, checkpoint_dir: Path,
               corpus_dir: Path | None = None, mix_dir: Path | None = None,
               probe: Callable[[nn.Module, EpochRecord], None] | None = None) -> TrainState:
    """Train the Deep Clustering network of `params.dpcl`.

    `corpus_dir`: the corpus whose `tr` utterances dynamic mixing draws from (when enabled);
    `mix_dir`: the mixtures whose `cv` subset selection by validation SDRi separates;
    `probe`: sees the kept weights after every epoch (benchmarks/learning_curves.py).
    """
    size = params.dpcl.network
    name = f"dpcl-{params.dpcl.size}-{size.layers}x{size.hidden}-D{params.dpcl.embedding_dim}"
    objective = DeepClusteringObjective(params.mix.n_speakers, params.dpcl.loss_weights)
    return _train(params, "dpcl", None, objective, params.dpcl.training, name, features_dir, out_dir,
                  checkpoint_dir, {"dpcl": params_to_dict(params.dpcl)}, corpus_dir, mix_dir, probe)


def train_baseline(params: Params, run: str, features_dir: Path, out_dir: Path, checkpoint_dir: Path) -> TrainState:
    """Train one neuron-model baseline; `run` is `<transfer function>-<objective>`."""
    cfg = params.baselines
    if run not in cfg.runs:
        raise DpclError(f"unknown baseline {run!r} (configured: {', '.join(cfg.runs)})")
    transfer, objective = run.rsplit("-", 1)
    section = params_to_dict(cfg)
    section.update(transfer_functions=[transfer], objectives=[objective],
                   transfer_params={k: v for k, v in section["transfer_params"].items()
                                    if k in (transfer, cfg.output_transfer)})
    return _train(params, "baseline", transfer, MaskObjective(params.mix.n_speakers, objective), cfg.training,
                  f"baseline-{cfg.topology}-{run}", features_dir, out_dir, checkpoint_dir,
                  {"baseline": section, "objective": objective})


def _train(params: Params, kind: str, transfer: str | None, objective: Objective, cfg: TrainingConfig, name: str,
           features_dir: Path, out_dir: Path, checkpoint_dir: Path, model_params: dict[str, Any],
           corpus_dir: Path | None = None, mix_dir: Path | None = None,
           probe: Callable[[nn.Module, EpochRecord], None] | None = None) -> TrainState:
    features_dir, out_dir = Path(features_dir), Path(out_dir)
    for split in ("tr", "cv"):
        if not (features_dir / f"{split}.h5").is_file():
            raise DpclError(f"{features_dir / f'{split}.h5'} not found: run the `features` stage first")
    dynamic = cfg.dynamic_mixing.enabled
    if dynamic and corpus_dir is None:
        raise DpclError(f"{name}: training.dynamic_mixing needs the corpus folder (--corpus data/corpus)")
    if cfg.selection == "sdri" and (kind != "dpcl" or mix_dir is None):
        raise DpclError(f"{name}: training.selection 'sdri' separates cv mixtures with k-means: "
                        "DPCL only, and it needs the mixture folder (--mix data/mix)")
    torch.manual_seed(cfg.seed)  # initial weights
    model = build_model(params, kind, transfer)
    # What makes two trainings the same experiment: a checkpoint from other values is not resumed.
    snapshot = {"model": model_params, "training": params_to_dict(cfg), "features": params_to_dict(params.features),
                "data": data_version(features_dir)}
    if dynamic:
        snapshot["corpus"] = data_version(Path(corpus_dir), ("summary.json", "manifest.csv"))
        snapshot["mix"] = {"max_gain_db": params.mix.max_gain_db, "peak": params.mix.peak}
    stats = features_dir / "stats.json"
    stats_arrays = read_stats(stats, params.features.n_bins)
    pool: list[UtterancePool] = []  # read once, on the first phase that needs it

    def datasets(chunk_frames: int) -> tuple[Dataset, ChunkDataset]:
        fixed = ChunkDataset(features_dir / "tr.h5", stats, chunk_frames)
        validation = ChunkDataset(features_dir / "cv.h5", stats, chunk_frames)
        if not dynamic:
            return fixed, validation
        if not pool:
            pool.append(UtterancePool.from_corpus(Path(corpus_dir), params.corpus.sample_rate))
        # An epoch holds as many examples as the fixed mixtures give chunks: equal budgets compare.
        drawn = DynamicMixDataset(pool[0], len(fixed), chunk_frames, cfg.dynamic_mixing, params.features,
                                  stats_arrays, params.mix.max_gain_db, params.mix.peak, cfg.seed)
        if cfg.loader_workers:
            drawn.measure_levels()
        return drawn, validation

    score = (SdriScorer(params, Path(mix_dir), stats_arrays, cfg.selection_mixtures)
             if cfg.selection == "sdri" else None)

    device = resolve_device(cfg.device)
    tracker: dict[str, Run] = {}

    def on_start(state: TrainState) -> None:
        tracker["run"] = run = Run(params.tracking, name, state.tracking_run_id)
        state.tracking_run_id = run.run_id
        run.log_params({**model_params, "training": params_to_dict(cfg), "features": params_to_dict(params.features),
                        "n_parameters": sum(p.numel() for p in model.parameters())})
        run.set_tags({"kind": kind, "device": str(device), "git_commit": git_commit(),
                      "data_version": snapshot["data"], "torch": torch.__version__,
                      "world_size": str(distributed.current().size)})

    def on_epoch(record: EpochRecord, state: TrainState) -> None:
        metrics = {"train_loss": record.train_loss, "val_loss": record.val_loss,
                   "learning_rate": record.learning_rate, "epoch_seconds": record.epoch_seconds,
                   "chunk_frames": record.chunk_frames}
        if score is not None:
            metrics["val_sdri"] = record.val_sdri
        tracker["run"].log_metrics(metrics, step=record.step)

    started = time.perf_counter()
    checkpoint = Path(checkpoint_dir) / f"{name}.pt"
    with distributed.process_group(device) as world:  # no-op without torchrun
        try:
            state = fit(model, objective, datasets, cfg, checkpoint, snapshot, on_epoch=on_epoch,
                        on_start=on_start, desc=name, score=score, probe=probe)
        except BaseException:
            if "run" in tracker:
                tracker["run"].finish("KILLED")
            raise
    if not world.is_main:  # rank 0 holds the same weights and writes them
        return state
    seconds = time.perf_counter() - started
    _write_outputs(out_dir, model, params, kind, transfer, model_params, state, name, device, seconds,
                   json.loads(stats.read_text()))
    run = tracker["run"]
    run.log_metrics({"best_val_loss": min(r.val_loss for r in state.history)}, step=len(state.history))
    for file in ("model.pt", "history.csv", "metrics.json"):
        run.log_artifact(out_dir / file)
    run.finish()
    return state


def model_payload(model: nn.Module, params: Params, kind: str, transfer: str | None, objective: str | None,
                  name: str, stats: dict[str, Any]) -> dict[str, Any]:
    """What model.pt holds: the weights, the params they were trained under and the feature
    statistics, so `dpcl separate` needs nothing but the file."""
    return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "params": params_to_dict(params), "kind": kind, "transfer": transfer, "objective": objective,
            "name": name, "stats": {"mean": stats["mean"], "std": stats["std"]}}


def _write_outputs(out_dir: Path, model: nn.Module, params: Params, kind: str, transfer: str | None,
                   model_params: dict[str, Any], state: TrainState, name: str, device: torch.device,
                   seconds: float, stats: dict[str, Any]) -> None:
    history = pd.DataFrame([asdict(r) for r in state.history])
    with atomic_dir(out_dir) as staging:
        torch.save(model_payload(model, params, kind, transfer, model_params.get("objective"), name, stats),
                   staging / "model.pt")
        history.to_csv(staging / "history.csv", index=False)
        write_json(staging / "metrics.json", {
            "name": name, "best_val_loss": float(history["val_loss"].min()), "epochs": len(history),
            "train_seconds": round(seconds, 2), "device": str(device),
            "parameters": sum(p.numel() for p in model.parameters())})
