"""The Deep Clustering embedding network (Hershey et al. 2016; DPCL++, Isik et al. 2016).

BLSTM stack -> linear layer to F*D -> tanh or sigmoid -> one unit-norm D-dimensional embedding
per time-frequency bin. Bins are ordered time-major: bin n = t * F + f, the order of a (T, F)
spectrogram (and of the feature store's targets and weights) flattened with `reshape(B, T * F)`.
Chunks have a fixed length, so there are no `lengths` and no packing.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

EMBEDDING_NONLINEARITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,  # the paper's choice
    "sigmoid": torch.sigmoid,  # DPCL++ / asteroid's choice: non-negative embeddings
}


class DeepClusteringNet(nn.Module):
    """(B, T, F) normalised log-magnitude -> (B, T*F, D) unit-norm embeddings, time-major bins.

    `dropout` applies between LSTM layers (nn.LSTM's own) and on the last LSTM layer's output,
    as DPCL++ regularises every recurrent layer's output.
    """

    def __init__(self, n_bins: int = 129, hidden: int = 300, layers: int = 2, embedding_dim: int = 20,
                 dropout: float = 0.0, nonlinearity: str = "tanh", bidirectional: bool = True) -> None:
        super().__init__()
        if nonlinearity not in EMBEDDING_NONLINEARITIES:
            raise ValueError(f"unknown embedding nonlinearity {nonlinearity!r}; "
                             f"choices: {', '.join(EMBEDDING_NONLINEARITIES)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_bins, self.embedding_dim, self.nonlinearity = n_bins, embedding_dim, nonlinearity
        self.blstm = nn.LSTM(n_bins, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                             dropout=dropout if layers > 1 else 0.0)  # nn.LSTM warns on dropout with 1 layer
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear((2 if bidirectional else 1) * hidden, n_bins * embedding_dim)
        self._squash = EMBEDDING_NONLINEARITIES[nonlinearity]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, n_frames, n_bins = x.shape  # (B, T, F)
        h, _ = self.blstm(x)  # (B, T, 2H)
        v = self._squash(self.linear(self.dropout(h)))  # (B, T, F*D)
        v = v.reshape(batch, n_frames * n_bins, self.embedding_dim)  # (B, T*F, D), bin n = t*F + f
        return F.normalize(v, p=2.0, dim=-1, eps=1e-8)  # (B, T*F, D), unit norm per bin

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, nonlinearity={self.nonlinearity!r}"
