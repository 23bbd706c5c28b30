"""The training loop: curriculum phases, validation, early stopping, checkpoints, exact resume.

A plain PyTorch loop (no framework hooks to rot across versions). It trains any model with
any objective `objective(model, batch) -> loss`; the stage functions in `train_stages.py` choose
both. Why each piece is the way it is:

- Randomness is re-seeded from (seed, phase, epoch) at the start of every epoch, so the batch
  order, dropout and stochastic neurons of epoch k do not depend on how the run got there:
  a run resumed from the checkpoint after epoch k-1 continues exactly as an uninterrupted one.
- The checkpoint (model, optimiser, scheduler, best weights, history, the resolved params) is
  written atomically after every epoch, outside the stage's output folder, so neither a kill
  nor Snakemake's removal of a failed job's outputs loses finished epochs.
- Each phase (DPCL++: 100-frame chunks, then 400) starts from the best weights of the one
  before, with a fresh optimiser at its own learning rate.
- With `ema_decay` > 0 the weights that are validated, selected and kept are a moving average
  of the trained ones (`averaging.py`); the optimiser keeps stepping the trained weights.
- Under torchrun the same loop runs on every rank (`distributed.py`): the model is wrapped in
  DistributedDataParallel, each rank takes its shard of the epoch's seeded order, losses are
  summed over ranks, and only rank 0 writes the checkpoint and calls the reporting callbacks.
  `batch_size` is per rank, so a step averages N x batch_size examples and an epoch, the same
  examples as one process would see, takes 1/N of the steps.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from dpcl import distributed
from dpcl.atomic import atomic_path
from dpcl.averaging import WeightAverage
from dpcl.config import TrainingConfig

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


class Objective(Protocol):
    def __call__(self, model: nn.Module, batch: Batch) -> torch.Tensor: ...


@dataclass
class EpochRecord:
    """One line of the training history (and one MLflow step)."""

    phase: int
    epoch: int
    step: int
    chunk_frames: int
    train_loss: float
    val_loss: float
    learning_rate: float
    epoch_seconds: float
    val_sdri: float = math.nan  # validation SDRi (dB) when weights are selected by it, else NaN


@dataclass
class TrainState:
    """Everything needed to continue a run; saved after every epoch."""

    phase: int = 0
    epoch: int = 0  # epochs completed in `phase`
    best_val: float = math.inf  # of the selection criterion, lower is better (the loss, or -SDRi)
    bad_epochs: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    tracking_run_id: str | None = None
    finished: bool = False


def resolve_device(name: str) -> torch.device:
    """`auto`: CUDA when present, else CPU; the same code and params serve both.

    Under torchrun a CUDA device is this rank's own GPU (cuda:LOCAL_RANK).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device is 'cuda' but torch sees no CUDA device")
    return distributed.local_device(torch.device(name))


def seed_epoch(seed: int, phase: int, epoch: int, rank: int = 0) -> torch.Generator:
    """Seed torch and numpy for one epoch; returns the generator that orders its batches.

    The order generator is the same on every rank (they shard one order); the global streams
    (dropout, stochastic neurons) differ per rank so ranks do not draw the same noise. Rank 0,
    and so a single process, gets the seeds it always had.
    """
    epoch_seed = _derived_seed(seed, phase, epoch)
    noise_seed = epoch_seed if rank == 0 else _derived_seed(seed, phase, epoch, rank)
    torch.manual_seed(noise_seed)
    np.random.seed(noise_seed % 2**32)
    generator = torch.Generator()
    generator.manual_seed(epoch_seed)
    return generator


def _derived_seed(*keys: int) -> int:
    """A 32-bit seed that depends on every key and on nothing else."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


def make_optimizer(cfg: TrainingConfig, params, learning_rate: float) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=learning_rate, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=learning_rate, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=learning_rate, weight_decay=cfg.weight_decay, momentum=cfg.momentum)
    return torch.optim.SGD(params, lr=learning_rate, weight_decay=cfg.weight_decay, momentum=cfg.momentum)


def make_scheduler(cfg: TrainingConfig, optimizer: torch.optim.Optimizer):
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.scheduler_factor,
                                                          patience=cfg.scheduler_patience)
    return None


def _to(batch: Batch, device: torch.device) -> Batch:
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


def autocast_enabled(cfg: TrainingConfig, device: torch.device) -> bool:
    """Whether training autocasts: `mixed_precision` on CUDA only (the CPU never autocasts)."""
    return cfg.mixed_precision and device.type == "cuda"


def _autocast(cfg: TrainingConfig, device: torch.device):
    """bfloat16 autocast on CUDA when asked: no loss scaling needed, the loss stays float32."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast_enabled(cfg, device))


def evaluate(model: nn.Module, objective: Objective, dataset: Dataset, batch_size: int, cfg: TrainingConfig,
             device: torch.device) -> float:
    """Mean loss over a dataset (no gradients, eval mode: expectations for stochastic neurons).

    Under torchrun each rank scores its turn of the single-process batches and the sums are
    shared, so every rank returns the value one process would. Pass the plain module, not the
    DDP wrapper: evaluation has no gradients to average and ranks may score unequal counts.
    """
    model.eval()
    total, count = 0.0, 0
    starts = range(0, len(dataset), batch_size)
    batches = [list(range(start, min(start + batch_size, len(dataset)))) for start in starts]
    batches = batches[: cfg.max_val_batches or None]
    loader = DataLoader(dataset, batch_sampler=distributed.deal(batches, distributed.current()))
    with torch.no_grad():
        for batch in loader:
            with _autocast(cfg, device):
                loss = objective(model, _to(batch, device))
            total += float(loss) * len(batch["logmag"])
            count += len(batch["logmag"])
    total, count = distributed.sum_over_ranks([total, count], device)
    return total / max(count, 1)


def fit(
    model: nn.Module,
    objective: Objective,
    datasets: Callable[[int], tuple[Dataset, Dataset]],
    cfg: TrainingConfig,
    checkpoint_path: Path,
    snapshot: dict[str, Any],
    on_epoch: Callable[[EpochRecord, TrainState], None] | None = None,
    on_start: Callable[[TrainState], None] | None = None,
    desc: str = "train",
    score: Callable[[nn.Module], float] | None = None,
    probe: Callable[[nn.Module, EpochRecord], None] | None = None,
) -> TrainState:
    """Train `model` through every phase of `cfg`, resuming from `checkpoint_path` if present.

    `datasets(chunk_frames)` returns (train, validation) datasets for a phase. `snapshot` (the
    resolved params) is stored in the checkpoint; a checkpoint written under other params is
    not resumed, since its epochs belong to a different experiment. On return the model holds
    the best weights (lowest validation loss of the last phase, or, with `score` (the model ->
    a validation quality, higher is better, e.g. SDRi in dB), the highest score: the loss of
    DPCL is a proxy, and its lowest point need not be the best separation). `probe(model,
    record)` sees the kept weights after every epoch without changing the training: the
    learning-curve benchmark scores the test split with it.

    Inside a process group (torchrun) every rank calls this: all read the checkpoint, only
    rank 0 writes it and calls `on_start` and `on_epoch` (they report; N reporters would log
    every epoch N times). `model` stays the plain module; only the training step sees DDP.
    """
    world = distributed.current()
    device = resolve_device(cfg.device)
    model.to(device)
    state, resumed = TrainState(), _load_checkpoint(checkpoint_path, snapshot)
    best_weights = copy.deepcopy(model.state_dict())
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        best_weights = resumed["best_model"]
        state = resumed["state"]
    average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    if average is not None and resumed is not None and resumed.get("average") is not None:
        average.load_state_dict(resumed["average"])
    if resumed is not None and world.is_main:
        log.info("resuming from %s: phase %d, %d epoch(s) done", checkpoint_path, state.phase + 1, state.epoch)
    distributed.barrier()  # every rank has read the checkpoint before rank 0 may overwrite it
    net = distributed.wrap(model, device)
    if on_start is not None and world.is_main:
        on_start(state)

    for phase_index, phase in enumerate(cfg.phases):
        if phase_index < state.phase or state.finished:
            continue
        train_set, val_set = datasets(phase.chunk_frames)
        optimizer = make_optimizer(cfg, model.parameters(), phase.learning_rate)
        scheduler = make_scheduler(cfg, optimizer)
        if resumed is not None and state.epoch > 0:
            optimizer.load_state_dict(resumed["optimizer"])
            if scheduler is not None and resumed["scheduler"] is not None:
                scheduler.load_state_dict(resumed["scheduler"])
        elif average is not None:  # a phase starts its average at the weights it starts from
            average.reset(model)
        for epoch in range(state.epoch, phase.epochs):
            record = _train_epoch(net, objective, train_set, val_set, optimizer, cfg, device,
                                  phase_index, epoch, phase.batch_size, phase.chunk_frames, desc, average)
            record.step = len(state.history)
            with _kept(model, average) as kept:
                if score is not None:
                    record.val_sdri = float(score(kept))
                candidate = copy.deepcopy(kept.state_dict())
                if probe is not None and world.is_main:
                    probe(kept, record)
            state.history.append(record)
            if scheduler is not None:
                scheduler.step(record.val_loss)
            criterion = -record.val_sdri if score is not None else record.val_loss
            if criterion < state.best_val:
                state.best_val, state.bad_epochs = criterion, 0
                best_weights = candidate
            else:
                state.bad_epochs += 1
            state.epoch = epoch + 1
            stop = cfg.early_stopping_patience > 0 and state.bad_epochs >= cfg.early_stopping_patience
            if stop or state.epoch >= phase.epochs:  # phase over: the next starts from its best weights
                state.phase, state.epoch, state.bad_epochs, state.best_val = phase_index + 1, 0, 0, math.inf
                model.load_state_dict(best_weights)
            state.finished = state.phase >= len(cfg.phases)
            if world.is_main:
                _save_checkpoint(checkpoint_path, model, best_weights, optimizer, scheduler, state, snapshot, average)
                if on_epoch is not None:
                    on_epoch(record, state)
                log.info("phase %d epoch %d: train %.4f val %.4f%s lr %.2e (%.1f s)%s", phase_index + 1, epoch + 1,
                         record.train_loss, record.val_loss,
                         f" val SDRi {record.val_sdri:.2f} dB" if score is not None else "",
                         record.learning_rate, record.epoch_seconds, "; early stop" if stop else "")
            if stop:
                break
    state.finished = True
    model.load_state_dict(best_weights)
    if world.active:  # equal on all ranks when DDP kept them in step; the distributed test compares them
        log.info("rank %d of %d: final weights sha256 %s", world.rank, world.size, distributed.weights_digest(model))
    return state


def _kept(model: nn.Module, average: WeightAverage | None):
    """Context: the weights a training keeps (the moving average when there is one)."""
    return average.applied(model) if average is not None else contextlib.nullcontext(model)


def _train_epoch(model: nn.Module, objective: Objective, train_set: Dataset, val_set: Dataset,
                 optimizer: torch.optim.Optimizer, cfg: TrainingConfig, device: torch.device, phase: int,
                 epoch: int, batch_size: int, chunk_frames: int, desc: str,
                 average: WeightAverage | None = None) -> EpochRecord:
    """One epoch of `model` (the DDP wrapper under torchrun); losses are means over all ranks.

    The validation loss is that of the kept weights: the moving average when `average` is given.
    """
    start = time.perf_counter()
    world = distributed.current()
    generator = seed_epoch(cfg.seed, phase, epoch, world.rank)
    if hasattr(train_set, "set_epoch"):  # dynamic mixing: the epoch's examples are drawn afresh
        train_set.set_epoch(phase, epoch)
    order = torch.randperm(len(train_set), generator=generator).tolist()
    if cfg.max_batches_per_epoch:  # the epoch's examples, whatever the number of ranks sharing them
        order = order[: cfg.max_batches_per_epoch * batch_size]
    order = distributed.shard(order, world)
    # An example depends on its index and the epoch alone, so workers change the speed, never the batches.
    loader = DataLoader(Subset(train_set, order), batch_size=batch_size, shuffle=False, drop_last=False,
                        num_workers=cfg.loader_workers)
    model.train()
    total, count = 0.0, 0
    progress = tqdm(loader, desc=f"{desc} p{phase + 1} e{epoch + 1}", unit="batch", mininterval=5, leave=False,
                    disable=not world.is_main)
    for batch in progress:
        batch = _to(batch, device)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(cfg, device):
            loss = objective(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss)} in phase {phase + 1}, epoch {epoch + 1}: "
                                     "lower the learning rate or set training.grad_clip")
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        if average is not None:
            average.update(distributed.unwrap(model))
        total += float(loss.detach()) * len(batch["logmag"])
        count += len(batch["logmag"])
    if world.active:
        log.info("rank %d of %d: phase %d epoch %d: %d training batches, %d examples", world.rank, world.size,
                 phase + 1, epoch + 1, len(loader), len(order))
    total, count = distributed.sum_over_ranks([total, count], device)
    with _kept(distributed.unwrap(model), average) as kept:
        val_loss = evaluate(kept, objective, val_set, batch_size, cfg, device)
    return EpochRecord(phase=phase + 1, epoch=epoch + 1, step=0, chunk_frames=chunk_frames,
                       train_loss=total / max(count, 1), val_loss=val_loss,
                       learning_rate=optimizer.param_groups[0]["lr"], epoch_seconds=time.perf_counter() - start)


def _save_checkpoint(path: Path, model: nn.Module, best_weights: dict, optimizer: torch.optim.Optimizer,
                     scheduler, state: TrainState, snapshot: dict[str, Any],
                     average: WeightAverage | None = None) -> None:
    payload = {
        "model": model.state_dict(), "best_model": best_weights, "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "average": average.state_dict() if average is not None else None,
        "state": {**asdict(state), "history": [asdict(r) for r in state.history]}, "params": snapshot,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path, snapshot: dict[str, Any]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload.get("params") != snapshot:
        log.warning("ignoring checkpoint %s: it was written under other params", path)
        return None
    raw = payload["state"]
    history = [EpochRecord(**r) for r in raw.pop("history")]
    payload["state"] = TrainState(**raw, history=history)
    return payload
