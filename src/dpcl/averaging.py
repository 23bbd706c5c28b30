"""An exponential moving average of a model's weights: the weights a short training keeps.

Why: on a 2-core CPU DPCL trains for a few thousand small-batch steps, and the separation
quality of consecutive epochs' weights jumps by +-0.5 dB (measured on the real test split);
the loss is still falling but each step's noise moves the embeddings. Averaging the weights
over the last ~1/(1 - decay) steps cancels that noise at the cost of one extra copy of the
weights and one multiply-add per step, and it is what validation, selection and the saved
model see (Polyak averaging; "EMA" in most modern training recipes).

The average starts at the current weights and uses decay min(decay, (1 + n) / (10 + n)) at
its n-th update, so its first updates follow the weights closely instead of dragging the
random initialisation along for thousands of steps. Its state (the averaged tensors and n)
goes into the training checkpoint, so a resumed run continues the same average exactly.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn


class WeightAverage:
    """`update(model)` after every optimiser step; `applied(model)` swaps the average in."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.average = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}

    def reset(self, model: nn.Module) -> None:
        """Start again from the model's current weights (a new curriculum phase)."""
        self.updates = 0
        self.average = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                self.average[name].mul_(decay).add_(tensor.detach(), alpha=1.0 - decay)
            else:  # integer buffers (counters): the current value
                self.average[name].copy_(tensor)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """The model holding the averaged weights inside the block, its own weights after it."""
        own = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        model.load_state_dict(self.average)
        try:
            yield model
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates,
                "average": {name: tensor.clone() for name, tensor in self.average.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.average = {name: tensor.clone() for name, tensor in state["average"].items()}
