"""Transfer functions: values on a grid, documented gradients, sampling, the registry's errors."""

from __future__ import annotations

import math

import pytest
import torch

from dpcl.models.transfer import TRANSFER_FUNCTIONS, TransferError, make_transfer

torch.set_num_threads(2)

GRID = torch.tensor([-5.0, -1.0, -0.25, 0.0, 0.25, 0.5, 1.0, 2.0, 5.0], dtype=torch.float64)
PARAMS = {"threshold": {}, "unipolar_sigmoid": {}, "bipolar_sigmoid": {},
          "piecewise_linear": {"c": 2.0, "x_c": 0.5}, "probabilistic": {"temperature": 0.5}}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def expected_value(name: str, x: float) -> float:
    """Each function's definition, written out from DESIGN.md's table."""
    if name == "threshold":
        return 1.0 if x >= 0 else 0.0
    if name == "unipolar_sigmoid":
        return sigmoid(x)
    if name == "bipolar_sigmoid":
        return 2.0 / (1.0 + math.exp(-x)) - 1.0
    if name == "piecewise_linear":
        return 0.0 if x <= 0 else (2.0 * x if x <= 0.5 else 1.0)
    if name == "probabilistic":  # eval mode: the expectation P(1)
        return sigmoid(x / 0.5)
    raise AssertionError(name)


def expected_grad(name: str, x: float) -> float:
    """The documented (surrogate where the function is flat) derivative."""
    s = sigmoid(x)
    if name in ("threshold", "unipolar_sigmoid"):
        return s * (1 - s)
    if name == "bipolar_sigmoid":
        return 2 * s * (1 - s)
    if name == "piecewise_linear":
        return 2.0 if 0 < x <= 0.5 else 0.0
    if name == "probabilistic":
        p = sigmoid(x / 0.5)
        return p * (1 - p) / 0.5
    raise AssertionError(name)


def test_registry_holds_the_five_functions():
    assert set(TRANSFER_FUNCTIONS) == set(PARAMS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_values_match_the_formula_on_a_grid(name):
    f = make_transfer(name, **PARAMS[name]).eval()
    got = f(GRID)
    want = torch.tensor([expected_value(name, x) for x in GRID.tolist()], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_boundaries_exactly():
    assert make_transfer("threshold")(torch.tensor([0.0, -1e-30])).tolist() == [1.0, 0.0]
    f = make_transfer("piecewise_linear", c=4.0, x_c=0.25)
    assert f(torch.tensor([0.0, 0.25, 0.2500001])).tolist() == [0.0, 1.0, 1.0]


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_gradient_reaches_the_input_with_the_documented_value(name):
    f = make_transfer(name, **PARAMS[name]).train()
    x = GRID.clone().requires_grad_(True)
    f(x).sum().backward()
    want = torch.tensor([expected_grad(name, v) for v in GRID.tolist()], dtype=torch.float64)
    torch.testing.assert_close(x.grad, want, rtol=1e-12, atol=1e-12)
    assert x.grad.abs().sum() > 0


def test_threshold_forward_is_exactly_binary_with_straight_through_gradient():
    x = torch.linspace(-3, 3, 101, requires_grad=True)
    y = make_transfer("threshold")(x)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    y.sum().backward()
    assert x.grad[50] == pytest.approx(0.25)  # x = 0: sigma'(0)


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_probabilistic_samples_have_mean_p1(temperature):
    x = torch.tensor([-2.0, 0.0, 1.5], dtype=torch.float64)
    f = make_transfer("probabilistic", temperature=temperature,
                      generator=torch.Generator().manual_seed(0)).train()
    samples = f(x.expand(100_000, 3))
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    p1 = torch.sigmoid(x / temperature)
    torch.testing.assert_close(samples.mean(0), p1, rtol=0, atol=0.01)  # 0.01 is > 6 standard errors


def test_probabilistic_eval_modes():
    x = torch.tensor([-1.0, 0.0, 3.0])
    expectation = make_transfer("probabilistic", temperature=2.0).eval()
    torch.testing.assert_close(expectation(x), torch.sigmoid(x / 2.0))
    sampler = make_transfer("probabilistic", temperature=2.0, eval_mode="sample").eval()
    assert set(sampler(x.expand(1000, 3)).unique().tolist()) == {0.0, 1.0}


def test_probabilistic_generator_makes_samples_reproducible():
    x = torch.zeros(1000)

    def draw() -> torch.Tensor:
        return make_transfer("probabilistic", temperature=1.0, generator=torch.Generator().manual_seed(7))(x)

    assert torch.equal(draw(), draw())


def test_unknown_name_lists_choices_and_suggests():
    with pytest.raises(ValueError, match="did you mean 'threshold'") as info:
        make_transfer("treshold")
    for name in PARAMS:
        assert name in str(info.value)


def test_unknown_and_missing_parameters_are_clear_errors():
    with pytest.raises(TransferError, match=r"unknown parameter.*'xc'.*did you mean 'x_c'.*takes: c, x_c"):
        make_transfer("piecewise_linear", c=1.0, xc=1.0)
    with pytest.raises(TransferError, match=r"needs parameter\(s\) \['temperature'\]"):
        make_transfer("probabilistic")
    with pytest.raises(TransferError, match="takes: no parameters"):
        make_transfer("unipolar_sigmoid", c=1.0)


def test_invalid_parameter_values():
    with pytest.raises(TransferError, match=r"c \* x_c == 1.*use x_c=0.5"):
        make_transfer("piecewise_linear", c=2.0, x_c=1.0)
    with pytest.raises(TransferError, match="temperature > 0"):
        make_transfer("probabilistic", temperature=0.0)
    with pytest.raises(TransferError, match="eval_mode"):
        make_transfer("probabilistic", temperature=1.0, eval_mode="mean")


def test_repr_shows_parameters():
    assert repr(make_transfer("piecewise_linear", c=2.0, x_c=0.5)) == "PiecewiseLinear(c=2, x_c=0.5)"
    assert "temperature=0.5" in repr(make_transfer("probabilistic", temperature=0.5))
