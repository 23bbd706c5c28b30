"""Models: swappable transfer functions, the neuron-model mask networks, the DPCL BLSTM."""

from dpcl.models.dpcl import EMBEDDING_NONLINEARITIES, DeepClusteringNet
from dpcl.models.neuron import (
    FeedForwardMaskNet,
    NeuronLayer,
    RecurrentMaskNet,
    RecurrentNeuronLayer,
    augment,
    with_context,
)
from dpcl.models.transfer import TRANSFER_FUNCTIONS, TransferError, make_transfer

__all__ = [
    "EMBEDDING_NONLINEARITIES",
    "TRANSFER_FUNCTIONS",
    "DeepClusteringNet",
    "FeedForwardMaskNet",
    "NeuronLayer",
    "RecurrentMaskNet",
    "RecurrentNeuronLayer",
    "TransferError",
    "augment",
    "make_transfer",
    "with_context",
]
