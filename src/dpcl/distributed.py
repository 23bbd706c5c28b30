"""Several processes, one training: torchrun and DistributedDataParallel; nothing at all when alone.

`torchrun --nproc_per_node N -m dpcl.cli train-dpcl ...` starts N copies of the stage and tells
each its place through environment variables (WORLD_SIZE, RANK, LOCAL_RANK). Without them, or
with WORLD_SIZE=1, every function here is a no-op: a single process trains exactly as before,
with no process group and no wrapper. Why each piece is the way it is:

- The backend follows the device: NCCL between GPUs, gloo between CPU processes (which is how
  the tests run two ranks on a laptop). Rank r of a node trains on cuda:r.
- Every rank draws the same seeded epoch order and keeps every N-th example of it (as
  torch's DistributedSampler does), padded so all ranks take the same number of steps: DDP
  all-reduces gradients inside `backward`, and a rank with one step more would wait forever.
- Validation batches are the single-process batches dealt out in turn, and each rank's
  (sum of losses, count) is summed over ranks, so the validation loss, early stopping and the
  learning-rate schedule see the same number one process would compute, identical on all ranks.
- Only rank 0 writes (checkpoint, model, history, MLflow): N writers of one file or one run
  would race, and the weights they hold are the same anyway (DDP keeps them in step).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from dpcl.errors import DpclError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes; the default is a process alone."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # rank within this machine: which GPU is ours

    @property
    def active(self) -> bool:
        """More than one process: gradients, shards and losses must be shared."""
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0, the only one that writes files and talks to MLflow."""
        return self.rank == 0


def from_env(environ: Mapping[str, str] | None = None) -> World:
    """The world torchrun describes in the environment (a lone process without its variables)."""
    environ = os.environ if environ is None else environ
    size = int(environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(rank=int(environ["RANK"]), size=size, local_rank=int(environ.get("LOCAL_RANK", "0")))


def current() -> World:
    """The world of the initialised process group, else a process alone.

    The training loop asks this rather than the environment, so it shares work only when a
    process group really exists (`process_group` below, or a caller's own).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=from_env().local_rank)


def local_device(device: torch.device) -> torch.device:
    """A bare `cuda` becomes this rank's own GPU under torchrun; anything else is kept."""
    world = from_env()
    if device.type != "cuda" or device.index is not None or not world.active:
        return device
    if world.local_rank >= torch.cuda.device_count():
        raise DpclError(f"torchrun started local rank {world.local_rank} but torch sees "
                        f"{torch.cuda.device_count()} GPU(s): use --nproc_per_node {torch.cuda.device_count()}")
    return torch.device("cuda", world.local_rank)


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[World]:
    """Join the other ranks for the duration of a training when torchrun started us; else do nothing."""
    world = from_env()
    if not world.active or dist.is_initialized():
        yield current()
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    try:
        yield current()
    finally:
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` when several ranks train, else `model` itself.

    The wrapper broadcasts rank 0's weights at construction, then averages gradients in every
    `backward`. Save and load through `unwrap`, so a model trained with DDP loads exactly
    like one trained without (no `module.` prefix on the keys).
    """
    if not current().active:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (or the module itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def shard(order: Sequence[int], world: World) -> list[int]:
    """Every `world.size`-th example of `order` from `world.rank` on, padded by wrapping around.

    All ranks get the same number of examples (hence of steps); together they cover the whole
    order, each example once apart from at most size-1 repeats of the first ones.
    """
    order = list(order)
    if not world.active or not order:
        return order
    total = -(-len(order) // world.size) * world.size  # rounded up to a multiple of size
    padded = (order * (-(-total // len(order))))[:total]
    return padded[world.rank::world.size]


def deal(batches: Sequence[list[int]], world: World) -> list[list[int]]:
    """Rank r's share of a list of batches: batches r, r + size, ... (no padding, for evaluation)."""
    return list(batches)[world.rank::world.size] if world.active else list(batches)


def sum_over_ranks(values: Sequence[float], device: torch.device) -> list[float]:
    """Element-wise sum of `values` over all ranks (float64, so counts stay exact)."""
    if not current().active:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def barrier() -> None:
    """Wait for every rank (no-op alone): e.g. nobody starts while another still reads a checkpoint."""
    if current().active:
        dist.barrier()


def weights_digest(model: nn.Module) -> str:
    """Short SHA-256 of a model's weights: equal on all ranks iff DDP kept them in step."""
    digest = hashlib.sha256()
    for name, tensor in unwrap(model).state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
