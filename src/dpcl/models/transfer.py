"""Transfer functions f of the neuron model o_j = f(W_j^T X) (DESIGN.md section 2), by name.

Every function is a small `nn.Module` applied elementwise; `TRANSFER_FUNCTIONS` maps the name
used in params.yaml to its class, and `make_transfer(name, **params)` builds one, checking the
name and the parameters so a typo fails at start-up with the choices listed, not mid-training.

The parameters of a transfer function (c, x_c, temperature) have no defaults here on purpose:
params.yaml is their one source of defaults, so no second copy can drift from it.

Adding a transfer function is one small module plus one registry entry::

    class Relu(nn.Module):
        '''f(x) = max(0, x): unbounded, so not a firing probability.'''

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x)

    TRANSFER_FUNCTIONS["relu"] = Relu

Its constructor's keyword arguments become its parameters in params.yaml; `make_transfer`
reads them from the signature, so nothing else needs to change.

Zero-gradient functions (the step, the Boltzmann sample) train with a straight-through estimator
written as `hard + (soft - soft.detach())`: the forward value is exactly `hard` (the added term is
exactly 0.0), the backward is d soft / dx. No custom autograd.Function is needed.
"""

from __future__ import annotations

import difflib
import inspect
import math
from typing import Any, Callable

import torch
from torch import nn

from dpcl.errors import DpclError

EVAL_MODES = ("expectation", "sample")


class TransferError(DpclError, ValueError):
    """An unknown transfer function name, or parameters it does not take."""


def _straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """`hard` in the forward pass, the gradient of `soft` in the backward pass."""
    return hard + (soft - soft.detach())


class Threshold(nn.Module):
    """The step f(x) = 1 if x >= 0 else 0, trained with a straight-through estimator.

    The step's true gradient is 0 almost everywhere, so the backward pass uses a surrogate: the
    derivative of the unipolar sigmoid, sigma(x)(1 - sigma(x)) (0.25 at x = 0). Why this one and
    not the identity: the step is the T -> 0 limit of sigma(x/T), so its surrogate is the
    gradient of the textbook neuron it replaces, and the same one the probabilistic neuron uses at
    T = 1 (the two then differ only in the forward pass); it is bounded by 1/4, so stacks of step
    layers cannot blow the gradient up; and it fades for |x| >> 0, where a small weight change
    cannot flip the output, instead of pushing already-saturated units further (identity-STE).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _straight_through((x >= 0).to(x.dtype), torch.sigmoid(x))


class UnipolarSigmoid(nn.Module):
    """f(x) = 1 / (1 + e^-x), range (0, 1): the textbook default."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)


class BipolarSigmoid(nn.Module):
    """f(x) = 2 / (1 + e^-x) - 1 = (1 - e^-x) / (1 + e^-x), range (-1, 1).

    Computed as tanh(x / 2), the same function: 2 sigma(x) - 1 cancels catastrophically near 0.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(0.5 * x)


class PiecewiseLinear(nn.Module):
    """f(x) = 0 for x <= 0; c x for 0 < x <= x_c; 1 for x > x_c (saturating, "pseudo-linear").

    c * x_c must equal 1 (checked): otherwise f jumps from c x_c to 1 at x_c, which the source
    material's "saturating linear" does not describe. The gradient is the function's own: c in
    0 < x <= x_c, 0 elsewhere (0 at x = 0, which belongs to the flat part). No straight-through
    gradient outside: unlike the step, f has a useful gradient on an interval, so descent works
    as it does for a ReLU, whose dead region it shares; a surrogate there would train a different
    function from the one evaluated.
    """

    def __init__(self, c: float, x_c: float) -> None:
        super().__init__()
        if not (c > 0 and x_c > 0):
            raise TransferError(f"piecewise_linear needs c > 0 and x_c > 0, got c={c}, x_c={x_c}")
        if not math.isclose(c * x_c, 1.0, rel_tol=1e-6):
            raise TransferError(
                f"piecewise_linear needs c * x_c == 1 (continuous at x_c), got c={c}, x_c={x_c} "
                f"(c * x_c = {c * x_c:g}): f would jump from {c * x_c:g} to 1; use x_c={1 / c:g}")
        self.c = float(c)
        self.x_c = float(x_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zero, one = torch.zeros_like(x), torch.ones_like(x)
        return torch.where(x <= 0, zero, torch.where(x <= self.x_c, self.c * x, one))

    def extra_repr(self) -> str:
        return f"c={self.c:g}, x_c={self.x_c:g}"


class Probabilistic(nn.Module):
    """The Boltzmann neuron: output 1 with probability P(1) = 1 / (1 + e^(-x/T)), else 0.

    Training mode: a Bernoulli sample in the forward pass, the gradient of P(1) in the backward
    pass (straight-through: dP/dx = sigma'(x/T) / T). Eval mode: P(1) itself (`eval_mode=
    "expectation"`, deterministic scores) or a sample (`eval_mode="sample"`).

    `generator` seeds the samples. They are drawn on the generator's device and moved to the
    input's, so any generator works with any input and a CPU generator gives the same samples on
    CPU and GPU. The generator's state is not part of `state_dict()`.
    """

    def __init__(self, temperature: float, eval_mode: str = "expectation",
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not temperature > 0:
            raise TransferError(f"probabilistic needs temperature > 0, got {temperature}")
        if eval_mode not in EVAL_MODES:
            raise TransferError(f"probabilistic eval_mode must be one of {EVAL_MODES}, got {eval_mode!r}")
        self.temperature = float(temperature)
        self.eval_mode = eval_mode
        self.generator = generator

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """P(1) = sigma(x / T), elementwise."""
        return torch.sigmoid(x / self.temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.probability(x)
        if not self.training and self.eval_mode == "expectation":
            return p
        device = self.generator.device if self.generator is not None else x.device
        u = torch.rand(x.shape, generator=self.generator, device=device, dtype=x.dtype).to(x.device)
        return _straight_through((u < p.detach()).to(x.dtype), p)

    def extra_repr(self) -> str:
        seeded = "seeded" if self.generator is not None else "global RNG"
        return f"temperature={self.temperature:g}, eval_mode={self.eval_mode!r}, {seeded}"


TRANSFER_FUNCTIONS: dict[str, Callable[..., nn.Module]] = {
    "threshold": Threshold,
    "unipolar_sigmoid": UnipolarSigmoid,
    "bipolar_sigmoid": BipolarSigmoid,
    "piecewise_linear": PiecewiseLinear,
    "probabilistic": Probabilistic,
}


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def make_transfer(name: str, **params: Any) -> nn.Module:
    """Build the transfer function registered as `name` with its parameters.

    Raises TransferError (a ValueError) naming the choices for an unknown name, and naming the
    accepted parameters for an unknown or missing one.

    >>> make_transfer("piecewise_linear", c=2.0, x_c=0.5)
    PiecewiseLinear(c=2, x_c=0.5)
    """
    if name not in TRANSFER_FUNCTIONS:
        choices = sorted(TRANSFER_FUNCTIONS)
        raise TransferError(f"unknown transfer function {name!r}{_did_you_mean(name, choices)}; "
                            f"choices: {', '.join(choices)}")
    factory = TRANSFER_FUNCTIONS[name]
    named = {key: p for key, p in inspect.signature(factory).parameters.items()
             if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}
    accepted = list(named)  # nn.Module's inherited (*args, **kwargs) accepts nothing in practice
    unknown = [key for key in params if key not in named]
    if unknown:
        hints = "".join(_did_you_mean(key, accepted) for key in unknown)
        raise TransferError(f"transfer function {name!r} got unknown parameter(s) {unknown}{hints}; "
                            f"it takes: {', '.join(accepted) or 'no parameters'}")
    missing = [key for key, p in named.items()
               if p.default is inspect.Parameter.empty and key not in params]
    if missing:
        raise TransferError(f"transfer function {name!r} needs parameter(s) {missing}; "
                            f"it takes: {', '.join(accepted)}")
    return factory(**params)
