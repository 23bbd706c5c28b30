"""Models: the neuron model by hand, mask-network and DPCL shapes, bin order, a toy optimisation."""

from __future__ import annotations

import pytest
import torch

from dpcl.losses import deep_clustering_loss, pit_mask_loss
from dpcl.models import (
    DeepClusteringNet,
    FeedForwardMaskNet,
    NeuronLayer,
    RecurrentMaskNet,
    make_transfer,
    with_context,
)

torch.set_num_threads(2)

TRANSFERS = [("threshold", {}), ("unipolar_sigmoid", {}), ("bipolar_sigmoid", {}),
             ("piecewise_linear", {"c": 1.0, "x_c": 1.0}), ("probabilistic", {"temperature": 1.0})]


def test_neuron_layer_is_f_of_weighted_sum_minus_threshold():
    torch.manual_seed(0)
    layer = NeuronLayer(3, 2, make_transfer("unipolar_sigmoid"))
    assert [name for name, _ in layer.named_parameters()] == ["weight"]  # no separate bias
    x = torch.randn(4, 3)
    w, threshold = layer.weight[1:], layer.threshold  # (3, 2), (2,)
    by_hand = torch.tensor([[torch.sigmoid(sum(w[i, j] * x[b, i] for i in range(3)) - threshold[j]).item()
                             for j in range(2)] for b in range(4)])
    torch.testing.assert_close(layer(x), by_hand)
    assert torch.equal(layer.threshold, layer.weight[0])


def test_threshold_is_learned_as_an_ordinary_weight():
    torch.manual_seed(0)
    neuron = NeuronLayer(1, 1, make_transfer("unipolar_sigmoid"))
    x = torch.rand(512, 1)
    label = (x > 0.6).float()  # fires above 0.6: needs threshold / weight = 0.6
    optimiser = torch.optim.Adam(neuron.parameters(), lr=0.1)
    for _ in range(300):
        optimiser.zero_grad()
        torch.nn.functional.binary_cross_entropy(neuron(x), label).backward()
        optimiser.step()
    w, threshold = neuron.weight[1, 0].item(), neuron.threshold[0].item()
    assert threshold / w == pytest.approx(0.6, abs=0.03)


def test_with_context_replicates_edges():
    x = torch.arange(4.0).reshape(1, 4, 1).expand(1, 4, 2)  # frame t holds the value t in both bins
    stacked = with_context(x, 2)  # (1, 4, 5 * 2)
    assert stacked.shape == (1, 4, 10)
    assert stacked[0, :, ::2].tolist() == [[0, 0, 0, 1, 2], [0, 0, 1, 2, 3], [0, 1, 2, 3, 3], [1, 2, 3, 3, 3]]


@pytest.mark.parametrize("name,params", TRANSFERS)
def test_feed_forward_mask_net_shapes_and_gradients(name, params):
    net = FeedForwardMaskNet(n_bins=9, context=2, hidden=(16, 8), n_sources=2, hidden_transfer=name,
                             hidden_params=params)
    x = torch.randn(3, 7, 9)
    masks = net(x)
    assert masks.shape == (3, 7, 9, 2)
    assert ((masks > 0) & (masks < 1)).all()
    masks.sum().backward()
    assert net.hidden[0].weight.grad.abs().sum() > 0  # straight-through gradients reach the first layer


def test_mask_net_output_options():
    x = torch.randn(2, 5, 6)
    binary = FeedForwardMaskNet(6, 1, (8,), 3, output_transfer="threshold")(x)
    assert set(binary.unique().tolist()) <= {0.0, 1.0}
    soft = FeedForwardMaskNet(6, 1, (8,), 3, output_transfer="softmax")(x)
    torch.testing.assert_close(soft.sum(-1), torch.ones(2, 5, 6))
    with pytest.raises(ValueError, match="choices"):
        FeedForwardMaskNet(6, 1, (8,), 3, hidden_transfer="sigmod")


@pytest.mark.parametrize("name,params", TRANSFERS)
def test_recurrent_mask_net_shapes(name, params):
    net = RecurrentMaskNet(n_bins=9, hidden=(12,), n_sources=2, hidden_transfer=name, hidden_params=params)
    masks = net(torch.randn(3, 7, 9))
    assert masks.shape == (3, 7, 9, 2)
    masks.sum().backward()
    assert net.hidden[0].cell.weight.grad.abs().sum() > 0


def test_recurrent_layer_is_the_feedback_equation_and_causal():
    torch.manual_seed(0)
    net = RecurrentMaskNet(n_bins=4, hidden=(5,), n_sources=2)
    layer = net.hidden[0]
    x = torch.randn(1, 3, 4)
    h = torch.zeros(5)
    for t in range(3):  # h_t = f(W^T [-1; x_t; h_{t-1}])
        h = torch.sigmoid(torch.cat([torch.tensor([-1.0]), x[0, t], h]) @ layer.cell.weight)
    torch.testing.assert_close(layer(x)[0, -1], h)
    later = x.clone()
    later[0, 2] += 1.0  # a change at t = 2 cannot reach t < 2
    torch.testing.assert_close(net(later)[:, :2], net(x)[:, :2])


def test_deep_clustering_net_shapes_unit_norm_and_time_major_bins():
    torch.manual_seed(0)
    net = DeepClusteringNet(n_bins=6, hidden=8, layers=2, embedding_dim=4, nonlinearity="sigmoid")
    v = net(torch.randn(2, 5, 6))
    assert v.shape == (2, 5 * 6, 4)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(2, 30))
    causal = DeepClusteringNet(n_bins=6, hidden=8, layers=1, embedding_dim=4, bidirectional=False)
    x = torch.randn(1, 5, 6)
    later = x.clone()
    later[0, 3] += 1.0  # frame 3 changes: only bins n = t*F + f with t >= 3 may change
    changed = (causal(later) - causal(x)).abs().sum(-1)[0] > 0  # (T*F,)
    assert not changed[: 3 * 6].any() and changed[3 * 6:].all()
    with pytest.raises(ValueError, match="choices: tanh, sigmoid"):
        DeepClusteringNet(nonlinearity="relu")


def toy_batch(seed: int):
    """Each bin belongs to source 1 where its input is positive: separable from the input alone."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(8, 20, 6, generator=g)  # (B, T, F)
    return x, (x > 0).long().reshape(8, -1), torch.ones(8, 20 * 6)  # target, weight: (B, T*F)


def test_deep_clustering_net_learns_a_toy_problem():
    torch.manual_seed(0)
    net = DeepClusteringNet(n_bins=6, hidden=16, layers=1, embedding_dim=4)
    optimiser = torch.optim.Adam(net.parameters(), lr=0.01)
    x, target, weight = toy_batch(0)
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = deep_clustering_loss(net(x), target, weight, n_sources=2)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device: torch.cuda.is_available() is False")
class TestCuda:
    """Forward and backward on the GPU: the code takes its device from the inputs only."""

    def test_deep_clustering_forward_backward(self):
        net = DeepClusteringNet(n_bins=129, hidden=32, layers=2, embedding_dim=20).cuda()
        x = torch.randn(2, 50, 129, device="cuda")
        target = torch.randint(0, 2, (2, 50 * 129), device="cuda")
        loss = deep_clustering_loss(net(x), target, torch.ones(2, 50 * 129, device="cuda"), n_sources=2)
        loss.backward()
        assert torch.isfinite(loss) and net.linear.weight.grad.is_cuda

    @pytest.mark.parametrize("net_class", [FeedForwardMaskNet, RecurrentMaskNet])
    def test_mask_nets_forward_backward(self, net_class):
        kwargs = {"context": 1} if net_class is FeedForwardMaskNet else {}
        net = net_class(n_bins=16, hidden=(8,), n_sources=2, hidden_transfer="probabilistic",
                        hidden_params={"temperature": 1.0, "generator": torch.Generator().manual_seed(0)},
                        **kwargs).cuda()
        x = torch.randn(2, 10, 16, device="cuda")
        sources = torch.rand(2, 2, 10, 16, device="cuda")
        loss, perm = pit_mask_loss(net(x), sources.sum(1), sources)
        loss.backward()
        assert perm.is_cuda and net.output.weight.grad.is_cuda
