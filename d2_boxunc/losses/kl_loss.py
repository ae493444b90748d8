"""KL-Loss for box regression with a predicted variance (He et al., CVPR 2019; formulas in
docs/design.md#variance-head-and-loss)."""

from __future__ import annotations

import torch
from fvcore.nn import smooth_l1_loss
from torch import Tensor

__all__ = ["kl_loss"]


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum()
    raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")


def kl_loss(
    pred: Tensor,
    log_var: Tensor,
    target: Tensor,
    beta: float = 1.0,
    reduction: str = "none",
    alpha_clamp: tuple[float, float] | None = None,
) -> Tensor:
    """Elementwise ``exp(-alpha) * SmoothL1_beta(pred - target) + alpha / 2``.

    The KL divergence from a Dirac at ``target`` to ``N(pred, exp(alpha))`` with the constant
    dropped and the quadratic replaced by smooth-L1 (``beta = 0``: plain L1). Its gradients are
    ``dL/dpred = exp(-alpha) * SL1'(d)`` and ``dL/dalpha = 1/2 - exp(-alpha) * SL1(d)``, so the
    optimum is ``alpha = log(2 * SL1(d))``.

    Computed in float32 or wider whatever the input dtype (``exp(-alpha)`` overflows fp16 from
    ``alpha < -11``), and in the log domain: ``exp(log SL1 - alpha)``, so a zero residual with a very
    negative ``alpha`` gives 0 rather than ``0 * inf = NaN``. Without a clamp the value is the
    exact one and overflows only where it exceeds the dtype's range (float32: ``log SL1 - alpha >
    88``). ``alpha_clamp=(lo, hi)`` (off by default, as in both reference codes; the paper's
    setting) clamps ``alpha`` in the forward pass with a straight-through gradient, which keeps
    every value and gradient finite for any finite ``alpha``.

    Non-finite inputs are not hidden: an element whose ``pred``, ``log_var`` or ``target`` is NaN
    or infinite gets the loss NaN (so does any reduction over it), whatever ``alpha_clamp``; its
    gradient is then meaningless (NaN or 0). The check is elementwise on the device, with no host
    sync; detectron2's trainer stops on the non-finite loss. Finite inputs whose value overflows
    still give ``inf``, as above.

    Args:
        pred, log_var, target: tensors of one shape (typically ``(R_fg, 4)`` deltas).
        beta: smooth-L1 transition point, in the units of ``pred``; 0 means L1.
        reduction: ``"none"`` | ``"sum"`` | ``"mean"``.
        alpha_clamp: optional ``(lo, hi)`` range for ``log_var``.
    """
    if not (pred.shape == log_var.shape == target.shape):
        raise ValueError(
            "kl_loss: pred, log_var and target must have one shape, got "
            f"{tuple(pred.shape)}, {tuple(log_var.shape)}, {tuple(target.shape)}"
        )
    if beta < 0:
        raise ValueError(f"kl_loss: beta must be >= 0, got {beta}")
    dtype = torch.promote_types(torch.promote_types(pred.dtype, log_var.dtype), torch.float32)
    pred, log_var, target = pred.to(dtype), log_var.to(dtype), target.to(dtype)
    # NaN/inf anywhere in an element must reach its loss: the masks below (sl1 > 0) and the clamp
    # would otherwise turn it into a finite value while NaN flows into the gradient.
    finite = torch.isfinite(pred) & torch.isfinite(log_var) & torch.isfinite(target)
    if alpha_clamp is not None:
        lo, hi = (float(v) for v in alpha_clamp)
        if not lo < hi:
            raise ValueError(
                f"kl_loss: alpha_clamp must be (lo, hi) with lo < hi, got {alpha_clamp}"
            )
        log_var = log_var + (log_var.clamp(lo, hi) - log_var).detach()
    sl1 = smooth_l1_loss(pred, target, beta, reduction="none")
    positive = sl1 > 0
    # Masked entries must see neither log(0) nor exp(-alpha) (0 * inf = NaN in the backward).
    exponent = torch.where(positive, torch.log(torch.where(positive, sl1, 1.0)) - log_var, 0.0)
    scaled = torch.where(positive, torch.exp(exponent), 0.0)
    loss = torch.where(finite, scaled + 0.5 * log_var, float("nan"))
    return _reduce(loss, reduction)
