"""Models from validated params, and back from a saved model file.

A saved model carries the resolved params it was trained with; `load_model` rebuilds the
network from that copy alone, so a model file never depends on today's params.yaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dpcl.config import BaselineConfig, DpclConfig, Params, params_from_dict
from dpcl.models.dpcl import DeepClusteringNet
from dpcl.models.neuron import FeedForwardMaskNet, RecurrentMaskNet


def build_dpcl(cfg: DpclConfig, n_bins: int) -> DeepClusteringNet:
    size = cfg.network
    return DeepClusteringNet(n_bins=n_bins, hidden=size.hidden, layers=size.layers, embedding_dim=cfg.embedding_dim,
                             dropout=size.dropout, nonlinearity=cfg.nonlinearity)


def build_baseline(cfg: BaselineConfig, transfer: str, n_bins: int, n_sources: int) -> nn.Module:
    """A neuron-model mask network whose hidden units use `transfer`."""
    output_params = cfg.params_of(cfg.output_transfer) if cfg.output_transfer != "softmax" else None
    common: dict[str, Any] = dict(n_bins=n_bins, hidden=cfg.hidden, n_sources=n_sources, hidden_transfer=transfer,
                                  hidden_params=cfg.params_of(transfer), output_transfer=cfg.output_transfer,
                                  output_params=output_params, context=cfg.context)
    if cfg.topology == "recurrent":
        return RecurrentMaskNet(**common)
    return FeedForwardMaskNet(**common)


def build_model(params: Params, kind: str, transfer: str | None = None) -> nn.Module:
    """`kind` is `dpcl` or `baseline` (with the hidden units' `transfer`)."""
    n_bins = params.features.n_bins
    if kind == "dpcl":
        return build_dpcl(params.dpcl, n_bins)
    if kind == "baseline" and transfer:
        return build_baseline(params.baselines, transfer, n_bins, params.mix.n_speakers)
    raise ValueError(f"unknown model kind {kind!r} (allowed: dpcl, baseline with a transfer function)")


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained model from its file; returns (model in eval mode, the file's metadata)."""
    payload = torch.load(Path(path), map_location=device, weights_only=False)
    return model_from_payload(payload, device), payload


def model_from_payload(payload: dict[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """The network a loaded model file describes, with its weights, in eval mode."""
    params = params_from_dict(payload["params"])
    model = build_model(params, payload["kind"], payload.get("transfer"))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
