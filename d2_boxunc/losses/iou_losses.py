"""IoU, GIoU and -ln IoU box losses (Rezatofighi et al., CVPR 2019, Alg. 2; see
docs/design.md#iou-loss-definitions),
and DIoU / CIoU (Zheng et al., AAAI 2020) and EIoU (Zhang et al., Neurocomputing 2022)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["iou_loss", "IOU_LOSS_MODES"]

IOU_LOSS_MODES = ("iou", "ln_iou", "giou", "diou", "ciou", "eiou")
REDUCTIONS = ("none", "sum", "mean")

# Coordinates are divided by a (detached) per-pair factor once their magnitude passes this value,
# so that areas (products of two side lengths) and their sums stay far from the float32 maximum
# (3.4e38). Below it the loss is computed on the coordinates as given, so ``eps`` keeps its meaning
# of "square pixels" for any realistic image.
_SAFE_COORD = 1e9


def _ordered(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x1, y1, x2, y2) with x1 <= x2 and y1 <= y2 (paper Alg. 2 step 1: swap, not collapse)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return (
        torch.minimum(x1, x2),
        torch.minimum(y1, y2),
        torch.maximum(x1, x2),
        torch.maximum(y1, y2),
    )


def _diou_penalty(px1, py1, px2, py2, gx1, gy1, gx2, gy2, cw, ch, eps: float) -> Tensor:
    """``rho^2 / (c^2 + eps)``: squared centre distance over the squared enclosing diagonal."""
    # twice the centre differences (no halving before squaring): rho^2 = (dx^2 + dy^2) / 4
    dx = (px1 + px2) - (gx1 + gx2)
    dy = (py1 + py2) - (gy1 + gy2)
    return 0.25 * (dx.square() + dy.square()) / (cw.square() + ch.square() + eps)


def iou_loss(
    pred: Tensor,
    target: Tensor,
    mode: str = "giou",
    eps: float = 1e-7,
    reduction: str = "none",
) -> Tensor:
    """Box losses on pairs of ``(x1, y1, x2, y2)`` boxes.

    - ``"iou"``: ``1 - IoU``, in ``[0, 1]``;
    - ``"ln_iou"``: ``-ln(max(IoU, eps))`` (UnitBox), in ``[0, -ln eps]`` (16.1 for 1e-7);
    - ``"giou"``: ``1 - GIoU = 1 - IoU + (A_c - U) / A_c``, in ``[0, 2]``;
    - ``"diou"``: ``1 - IoU + rho^2 / c^2`` (Distance-IoU, Zheng et al., AAAI 2020, Eq. 7), in
      ``[0, 2)``;
    - ``"ciou"``: ``1 - IoU + rho^2 / c^2 + alpha * v`` (Complete-IoU, same paper, Eq. 10), with
      ``v = 4 / pi^2 * (atan(w_g / h_g) - atan(w_p / h_p))^2`` and
      ``alpha = v / ((1 - IoU) + v)`` a constant (no gradient flows through it), in ``[0, 3)``;
    - ``"eiou"``: ``1 - IoU + rho^2 / c^2 + (w_p - w_g)^2 / c_w^2 + (h_p - h_g)^2 / c_h^2``
      (Efficient-IoU, Zhang et al., Neurocomputing 2022), in ``[0, 4)``.

    With ``I`` the intersection, ``U = A_p + A_g - I`` the union and ``A_c`` the area of the
    smallest enclosing box, ``IoU = I / (U + eps)`` and the enclosing term is
    ``(A_c - U) / (A_c + eps)`` (``eps`` as in the GIoU repo and fvcore). For the distance-based
    modes, ``rho`` is the distance between the box centres, ``c_w`` / ``c_h`` the width / height
    of the enclosing box and ``c^2 = c_w^2 + c_h^2`` its squared diagonal; the divisions are
    ``rho^2 / (c^2 + eps)``, ``/ (c_w^2 + eps)``, ``/ (c_h^2 + eps)``, the aspect-ratio angles are
    ``atan2(w, h + eps)`` and ``alpha = v / (1 - IoU + v + eps)`` (detectron2's ``diou_loss`` /
    ``ciou_loss`` conventions, which these equal on valid boxes up to ``O(eps / h)``). No square
    root is taken (its gradient is infinite at 0).

    Numerics, for every finite input (zero-area, inverted, identical or huge boxes):

    - inverted predictions (``x2 < x1``) are re-ordered by swapping the coordinates (paper Alg. 2
      step 1), so an inverted box has the same loss as its ordered twin; targets are ordered too;
    - the intersection uses the clamp form ``max(0, .)`` rather than masked assignment, whose
      backward propagates NaN from degenerate rows; every division has ``eps`` in its
      denominator, so values and gradients stay finite;
    - computed in float32 or wider whatever the input dtype (fp16 areas overflow at 256 px);
      coordinates whose magnitude exceeds 1e9 are first divided by a detached per-pair factor,
      which leaves every mode unchanged (they are all scale invariant) but keeps the areas and
      squared lengths in range.

    Args:
        pred (Tensor[..., 4]): predicted boxes.
        target (Tensor[..., 4]): ground-truth boxes, same shape as ``pred``.
        mode: ``"iou"``, ``"ln_iou"``, ``"giou"``, ``"diou"``, ``"ciou"`` or ``"eiou"``.
            Default: ``"giou"``.
        eps: positive constant added to the union, the enclosing area, the squared enclosing
            diagonal / width / height and the heights in the CIoU angles. Default: 1e-7.
        reduction: ``"none"`` (shape ``pred.shape[:-1]``), ``"sum"`` or ``"mean"`` (the mean of
            an empty input is 0). Default: ``"none"``.

    Returns:
        Tensor: the loss, in float32 or the inputs' wider floating dtype.
    """
    if not isinstance(pred, Tensor) or not isinstance(target, Tensor):
        raise ValueError("iou_loss: pred and target must be tensors")
    if pred.shape != target.shape or pred.dim() == 0 or pred.shape[-1] != 4:
        raise ValueError(
            "iou_loss: pred and target must have the same shape (..., 4), got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if mode not in IOU_LOSS_MODES:
        raise ValueError(f"iou_loss: mode must be one of {IOU_LOSS_MODES}, got {mode!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"iou_loss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not eps > 0:
        raise ValueError(f"iou_loss: eps must be positive, got {eps}")

    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    pred, target = pred.to(dtype), target.to(dtype)
    # Detached rescaling of huge pairs: exact for the loss (scale invariance), so the gradient
    # through the rescaled coordinates equals the true one.
    with torch.no_grad():
        magnitude = torch.maximum(pred.abs().amax(-1), target.abs().amax(-1))
        scale = (magnitude / _SAFE_COORD).clamp(min=1.0).unsqueeze(-1)
    pred, target = pred / scale, target / scale

    px1, py1, px2, py2 = _ordered(pred)
    gx1, gy1, gx2, gy2 = _ordered(target)
    area_p = (px2 - px1) * (py2 - py1)
    area_g = (gx2 - gx1) * (gy2 - gy1)
    iw = (torch.minimum(px2, gx2) - torch.maximum(px1, gx1)).clamp(min=0)
    ih = (torch.minimum(py2, gy2) - torch.maximum(py1, gy1)).clamp(min=0)
    inter = iw * ih
    union = (area_p + area_g - inter).clamp(min=0)
    iou = inter / (union + eps)

    if mode == "iou":
        loss = 1.0 - iou
    elif mode == "ln_iou":
        # clamp, not "+ eps": the loss is exactly 0 at IoU = 1 and never negative
        loss = -torch.log(iou.clamp(min=eps))
    else:
        cw = torch.maximum(px2, gx2) - torch.minimum(px1, gx1)
        ch = torch.maximum(py2, gy2) - torch.minimum(py1, gy1)
        if mode == "giou":
            area_c = cw * ch
            # A_c >= U in exact arithmetic; the clamp keeps rounding from pushing GIoU above IoU
            loss = 1.0 - iou + (area_c - union).clamp(min=0) / (area_c + eps)
        else:
            loss = 1.0 - iou + _diou_penalty(px1, py1, px2, py2, gx1, gy1, gx2, gy2, cw, ch, eps)
            w_p, h_p, w_g, h_g = px2 - px1, py2 - py1, gx2 - gx1, gy2 - gy1
            if mode == "ciou":
                # atan2(w, h + eps) = atan(w / (h + eps)) for w, h >= 0, without the huge
                # intermediate w / eps of a zero-height box
                angle = torch.atan2(w_g, h_g + eps) - torch.atan2(w_p, h_p + eps)
                v = (4.0 / math.pi**2) * angle.square()
                with torch.no_grad():  # alpha is a trade-off constant (paper, detectron2)
                    alpha = v / (1.0 - iou + v + eps)
                loss = loss + alpha * v
            elif mode == "eiou":
                loss = (
                    loss
                    + (w_p - w_g).square() / (cw.square() + eps)
                    + (h_p - h_g).square() / (ch.square() + eps)
                )

    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum()
    return loss
