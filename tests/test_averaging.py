"""The moving average of the weights: its arithmetic, its warm-up, and that it never leaks into training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dpcl.averaging import WeightAverage


def test_average_follows_the_weights_with_its_decay_after_the_warm_up():
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(0.0)
    average = WeightAverage(model, decay=0.5)
    expected = torch.zeros_like(model.weight)
    for step, value in enumerate([1.0, 2.0, 3.0, 4.0]):
        with torch.no_grad():
            model.weight.fill_(value)
        average.update(model)
        decay = min(0.5, (1 + step) / (10 + step))  # 0.1, 0.18..., then 0.5 once the warm-up passes it
        expected = decay * expected + (1 - decay) * value
        torch.testing.assert_close(average.average["weight"], expected)
    assert average.updates == 4


def test_applied_swaps_the_average_in_and_restores_the_trained_weights():
    model = nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.9)
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    average.average["weight"].fill_(7.0)
    with average.applied(model) as kept:
        assert kept is model and torch.all(model.weight == 7.0)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, trained[name]), name


def test_state_round_trip_and_reset():
    model = nn.Linear(2, 2)
    average = WeightAverage(model, decay=0.99)
    average.update(model)
    copy = WeightAverage(nn.Linear(2, 2), decay=0.5)
    copy.load_state_dict(average.state_dict())
    assert copy.decay == 0.99 and copy.updates == 1
    for name in average.average:
        assert torch.equal(copy.average[name], average.average[name])
    copy.reset(model)
    assert copy.updates == 0 and torch.equal(copy.average["weight"], model.weight)


def test_decay_outside_the_open_interval_is_refused():
    with pytest.raises(ValueError, match="decay must be in"):
        WeightAverage(nn.Linear(1, 1), decay=1.0)
