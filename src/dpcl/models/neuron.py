"""The neuron-model baselines (DESIGN.md section 2): layers of units o_j = f(W_j^T X).

Each unit takes the input augmented with a constant x_0 = -1, so its threshold T_j is the
ordinary weight w_0j: net_j = sum_{i=0..n} w_ij x_i = sum_{i=1..n} w_ij x_i - T_j. The networks
map a normalised log-magnitude mixture spectrogram (B, T, F) to one mask per source
(B, T, F, C), frame by frame with +-`context` frames of context:

- `FeedForwardMaskNet`: the layered feed-forward topology (input, hidden layers, output);
- `RecurrentMaskNet`: the feedback topology, h_t = f(W^T [-1; x_t; h_{t-1}]).

The output transfer is elementwise (a registry name: "unipolar_sigmoid" by default; "threshold"
gives binary masks) or "softmax", which couples a bin's C masks so they sum to 1.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn

from dpcl.models.transfer import TransferError, make_transfer

SOFTMAX = "softmax"
TransferSpec = str | Callable[[], nn.Module]


def augment(x: torch.Tensor) -> torch.Tensor:
    """Prepend the constant input x_0 = -1: (..., n) -> (..., n + 1)."""
    minus_one = x.new_full((*x.shape[:-1], 1), -1.0)
    return torch.cat([minus_one, x], dim=-1)  # (..., 1 + n)


def build_transfer(spec: TransferSpec, params: Mapping[str, Any] | None = None) -> nn.Module:
    """A fresh transfer module from a registry name plus parameters, or from a zero-argument factory."""
    if isinstance(spec, str):
        return make_transfer(spec, **dict(params or {}))
    if params:
        raise TransferError(f"parameters {dict(params)} are only for a registry name, not for factory {spec!r}")
    return spec()


def with_context(x: torch.Tensor, context: int) -> torch.Tensor:
    """Stack each frame with its +-`context` neighbours; the edges repeat the first/last frame.

    (B, T, F) -> (B, T, (2 context + 1) F), ordered frame t-context first, bins within a frame.
    """
    if context == 0:
        return x
    n_frames = x.shape[1]
    offsets = torch.arange(-context, context + 1, device=x.device)  # (2c+1,)
    index = (torch.arange(n_frames, device=x.device)[:, None] + offsets).clamp(0, n_frames - 1)  # (T, 2c+1)
    windows = x[:, index]  # (B, T, 2c+1, F)
    return windows.reshape(x.shape[0], n_frames, -1)  # (B, T, (2c+1)*F)


class NeuronLayer(nn.Module):
    """n_out neurons o_j = f(W_j^T X), X = [-1, x_1, ..., x_n]: the threshold is weight row 0.

    Why not nn.Linear's bias: the source material defines the threshold as the weight of a
    constant input x_0 = -1, so `weight` of shape (n_in + 1, n_out) is the whole W of the model,
    `weight[0]` is T, and it learns, is initialised and is regularised like every other weight.
    """

    def __init__(self, n_in: int, n_out: int, transfer: nn.Module) -> None:
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.weight = nn.Parameter(torch.empty(n_in + 1, n_out))  # (1 + n_in, n_out); row 0: T_j
        self.transfer = transfer
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on every weight, thresholds included (nn.Linear's scale)."""
        bound = (self.n_in + 1) ** -0.5
        nn.init.uniform_(self.weight, -bound, bound)

    @property
    def threshold(self) -> torch.Tensor:
        """T_j = w_0j, shape (n_out,)."""
        return self.weight[0]

    def net(self, x: torch.Tensor) -> torch.Tensor:
        """Net input W^T X: (..., n_in) -> (..., n_out)."""
        return augment(x) @ self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transfer(self.net(x))

    def extra_repr(self) -> str:
        return f"n_in={self.n_in}, n_out={self.n_out}, threshold=weight[0]"


class RecurrentNeuronLayer(nn.Module):
    """A feedback layer of neurons: h_t = f(W^T [-1; x_t; h_{t-1}]), h_0 = 0.

    W (1 + n_in + n_hidden, n_hidden) is one NeuronLayer's weight; row 0 is the threshold.
    For speed the input rows are applied to all frames in one product before the loop over time,
    which is the same sum: W^T [-1; x_t; h] = W[:1+n_in]^T [-1; x_t] + W[1+n_in:]^T h.
    """

    def __init__(self, n_in: int, n_hidden: int, transfer: nn.Module) -> None:
        super().__init__()
        self.n_in, self.n_hidden = n_in, n_hidden
        self.cell = NeuronLayer(n_in + n_hidden, n_hidden, transfer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, n_in) -> (B, T, n_hidden)."""
        w_in = self.cell.weight[: 1 + self.n_in]  # (1 + n_in, H): threshold and input weights
        w_rec = self.cell.weight[1 + self.n_in:]  # (H, H): feedback weights
        net_in = augment(x) @ w_in  # (B, T, H)
        h = x.new_zeros(x.shape[0], self.n_hidden)  # (B, H)
        outputs = []
        for t in range(x.shape[1]):
            h = self.cell.transfer(net_in[:, t] + h @ w_rec)  # (B, H)
            outputs.append(h)
        return torch.stack(outputs, dim=1)  # (B, T, H)

    def extra_repr(self) -> str:
        return f"n_in={self.n_in}, n_hidden={self.n_hidden}"


class _MaskNet(nn.Module):
    """What both topologies share: context stacking in, one mask per source and bin out."""

    def __init__(self, n_bins: int, context: int, n_sources: int, output_transfer: TransferSpec,
                 output_params: Mapping[str, Any] | None) -> None:
        super().__init__()
        if n_bins < 1 or n_sources < 1 or context < 0:
            raise ValueError(f"need n_bins >= 1, n_sources >= 1, context >= 0; got {n_bins}, {n_sources}, {context}")
        self.n_bins, self.context, self.n_sources = n_bins, context, n_sources
        if output_transfer == SOFTMAX:
            if output_params:
                raise TransferError(f"softmax output takes no parameters, got {dict(output_params)}")
            self.output_transfer: nn.Module = nn.Softmax(dim=-1)
        else:
            self.output_transfer = build_transfer(output_transfer, output_params)

    def masks(self, net: torch.Tensor) -> torch.Tensor:
        """The output layer's net input (B, T, F*C) -> masks (B, T, F, C)."""
        net = net.unflatten(-1, (self.n_bins, self.n_sources))  # (B, T, F, C)
        return self.output_transfer(net)


class FeedForwardMaskNet(_MaskNet):
    """Layered feed-forward network of NeuronLayers: (B, T, F) -> masks (B, T, F, C).

    Input: (2 context + 1) F values per frame; `hidden` gives each hidden layer's width (all use
    `hidden_transfer`); the output layer has F*C neurons, one per bin and source.
    """

    def __init__(self, n_bins: int, context: int, hidden: tuple[int, ...], n_sources: int,
                 hidden_transfer: TransferSpec = "unipolar_sigmoid", hidden_params: Mapping[str, Any] | None = None,
                 output_transfer: TransferSpec = "unipolar_sigmoid",
                 output_params: Mapping[str, Any] | None = None) -> None:
        super().__init__(n_bins, context, n_sources, output_transfer, output_params)
        widths = [(2 * context + 1) * n_bins, *hidden]
        self.hidden = nn.Sequential(*(NeuronLayer(n_in, n_out, build_transfer(hidden_transfer, hidden_params))
                                      for n_in, n_out in zip(widths[:-1], widths[1:])))
        self.output = NeuronLayer(widths[-1], n_bins * n_sources, nn.Identity())  # f applied in masks()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(with_context(x, self.context))  # (B, T, hidden[-1])
        return self.masks(self.output(h))  # (B, T, F, C)


class RecurrentMaskNet(_MaskNet):
    """Recurrent (feedback) layers of neurons, then an output NeuronLayer: (B, T, F) -> (B, T, F, C).

    Causal: the recurrence sees past frames only; `context` > 0 adds that many future frames.
    """

    def __init__(self, n_bins: int, hidden: tuple[int, ...], n_sources: int,
                 hidden_transfer: TransferSpec = "unipolar_sigmoid", hidden_params: Mapping[str, Any] | None = None,
                 output_transfer: TransferSpec = "unipolar_sigmoid", output_params: Mapping[str, Any] | None = None,
                 context: int = 0) -> None:
        super().__init__(n_bins, context, n_sources, output_transfer, output_params)
        if not hidden:
            raise ValueError("RecurrentMaskNet needs at least one recurrent layer: hidden=()")
        widths = [(2 * context + 1) * n_bins, *hidden]
        self.hidden = nn.Sequential(*(RecurrentNeuronLayer(n_in, n_out, build_transfer(hidden_transfer, hidden_params))
                                      for n_in, n_out in zip(widths[:-1], widths[1:])))
        self.output = NeuronLayer(widths[-1], n_bins * n_sources, nn.Identity())  # f applied in masks()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hidden(with_context(x, self.context))  # (B, T, hidden[-1])
        return self.masks(self.output(h))  # (B, T, F, C)
