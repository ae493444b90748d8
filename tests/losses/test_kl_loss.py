"""kl_loss: values and gradients against the closed forms of docs/design.md#variance-head-and-loss,
and numerics."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from d2_boxunc.losses import kl_loss


def closed_form(d, alpha, beta):
    ad = d.abs()
    if beta > 0:
        sl1 = torch.where(ad < beta, 0.5 * d * d / beta, ad - 0.5 * beta)
        dsl1 = torch.where(ad < beta, d / beta, d.sign())
    else:
        sl1, dsl1 = ad, d.sign()
    value = torch.exp(-alpha) * sl1 + alpha / 2
    return value, torch.exp(-alpha) * dsl1, 0.5 - torch.exp(-alpha) * sl1


@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0])
def test_values_and_gradients_match_closed_form(beta):
    pred = (torch.randn(64, 4, dtype=torch.float64) * 2).requires_grad_()
    target = torch.randn(64, 4, dtype=torch.float64)
    alpha = (torch.randn(64, 4, dtype=torch.float64) * 3).requires_grad_()
    loss = kl_loss(pred, alpha, target, beta=beta)
    value, dpred, dalpha = closed_form(pred.detach() - target, alpha.detach(), beta)
    torch.testing.assert_close(loss, value)
    loss.sum().backward()
    torch.testing.assert_close(pred.grad, dpred)
    torch.testing.assert_close(alpha.grad, dalpha)


def test_gradient_in_alpha_vanishes_at_log_of_twice_the_residual_loss():
    d = torch.tensor([0.3, 2.0, -5.0], dtype=torch.float64)
    sl1 = torch.tensor([0.5 * 0.3**2, 2.0 - 0.5, 5.0 - 0.5], dtype=torch.float64)
    alpha = torch.log(2 * sl1).requires_grad_()
    kl_loss(d, alpha, torch.zeros(3, dtype=torch.float64)).sum().backward()
    torch.testing.assert_close(alpha.grad, torch.zeros(3, dtype=torch.float64))


def test_reductions_and_shape_errors():
    pred, alpha, target = torch.randn(5, 4), torch.randn(5, 4), torch.randn(5, 4)
    full = kl_loss(pred, alpha, target)
    torch.testing.assert_close(kl_loss(pred, alpha, target, reduction="sum"), full.sum())
    torch.testing.assert_close(kl_loss(pred, alpha, target, reduction="mean"), full.mean())
    assert kl_loss(pred[:0], alpha[:0], target[:0], reduction="mean").item() == 0.0
    with pytest.raises(ValueError, match="one shape"):
        kl_loss(pred, alpha[:, :2], target)
    with pytest.raises(ValueError, match="reduction"):
        kl_loss(pred, alpha, target, reduction="avg")
    with pytest.raises(ValueError, match="beta"):
        kl_loss(pred, alpha, target, beta=-1.0)


def test_half_inputs_are_computed_in_float32():
    pred = torch.zeros(3, 4, dtype=torch.float16)
    alpha = torch.full((3, 4), -20.0, dtype=torch.float16)  # exp(20) overflows fp16
    loss = kl_loss(pred + 0.5, alpha, pred)
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()


def test_zero_residual_with_very_negative_alpha_is_not_nan():
    pred = torch.zeros(4, requires_grad=True)
    alpha = torch.full((4,), -1e4, requires_grad=True)
    loss = kl_loss(pred, alpha, torch.zeros(4))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(pred.grad).all()
    torch.testing.assert_close(alpha.grad, torch.full((4,), 0.5))


@settings(max_examples=200, deadline=None)
@given(
    d=st.floats(-1e3, 1e3, allow_nan=False),
    alpha=st.floats(-1e6, 1e6, allow_nan=False),
    beta=st.sampled_from([0.0, 1.0 / 9, 1.0]),
)
def test_with_clamp_every_finite_input_gives_finite_value_and_gradients(d, alpha, beta):
    pred = torch.tensor([d], requires_grad=True)
    a = torch.tensor([alpha], requires_grad=True)
    loss = kl_loss(pred, a, torch.zeros(1), beta=beta, alpha_clamp=(-15.0, 15.0))
    loss.sum().backward()
    assert torch.isfinite(loss).all()
    assert torch.isfinite(pred.grad).all() and torch.isfinite(a.grad).all()


@settings(max_examples=200, deadline=None)
@given(d=st.floats(-100, 100, allow_nan=False), alpha=st.floats(-60, 60, allow_nan=False))
def test_without_clamp_values_in_range_stay_finite(d, alpha):
    pred = torch.tensor([d], requires_grad=True)
    a = torch.tensor([alpha], requires_grad=True)
    loss = kl_loss(pred, a, torch.zeros(1))
    loss.sum().backward()
    assert (
        torch.isfinite(loss).all()
        and torch.isfinite(pred.grad).all()
        and torch.isfinite(a.grad).all()
    )


def test_clamp_is_straight_through():
    alpha = torch.tensor([30.0, 0.0], requires_grad=True)
    loss = kl_loss(torch.ones(2), alpha, torch.zeros(2), alpha_clamp=(-15.0, 15.0))
    torch.testing.assert_close(loss[0], torch.exp(torch.tensor(-15.0)) * 0.5 + 7.5)
    loss.sum().backward()
    assert alpha.grad[0] != 0  # the gradient does not vanish beyond the clamp
    with pytest.raises(ValueError, match="alpha_clamp"):
        kl_loss(torch.ones(2), alpha, torch.zeros(2), alpha_clamp=(1.0, -1.0))


@pytest.mark.parametrize("alpha_clamp", [None, (-15.0, 15.0)])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", ["pred", "log_var", "target"])
def test_non_finite_input_gives_nan_loss_never_a_finite_loss_with_nan_gradient(
    where, value, alpha_clamp
):
    # element 0 has a zero residual (the sl1 > 0 mask used to hide NaN there), element 1 does not
    inputs = {
        "pred": torch.tensor([0.3, 1.0, 2.0, -1.0]),
        "log_var": torch.tensor([0.2, -1.0, 0.5, 1.0]),
        "target": torch.tensor([0.3, 0.5, 0.0, 0.0]),
    }
    clean = kl_loss(**inputs, alpha_clamp=alpha_clamp)
    inputs[where][:2] = value
    pred = inputs["pred"].requires_grad_()
    log_var = inputs["log_var"].requires_grad_()
    loss = kl_loss(pred, log_var, inputs["target"], alpha_clamp=alpha_clamp)
    assert torch.isnan(loss[:2]).all()
    torch.testing.assert_close(loss[2:], clean[2:])  # the other elements are untouched
    loss[2:].sum().backward()  # the NaN elements' gradients are meaningless; the others are not
    assert torch.isfinite(pred.grad[2:]).all() and torch.isfinite(log_var.grad[2:]).all()
    for reduction in ("sum", "mean"):
        assert torch.isnan(kl_loss(pred, log_var, inputs["target"], reduction=reduction))
