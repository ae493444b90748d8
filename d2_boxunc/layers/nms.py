"""NMS family for box-uncertainty detectors: soft-NMS, IoU-guided NMS, DIoU-NMS, KL-Loss variance
voting.

Boxes are ``(x1, y1, x2, y2)`` without "+1". The exact conventions
(docs/design.md#nms-family-rules):

- IoU thresholds are strict: a box is suppressed, decayed or votes when ``IoU > t``.
- Score thresholds are inclusive: a box survives when ``score >= score_threshold``. Boxes whose
  *initial* score is below ``score_threshold`` are dropped before anything else.
- Ties in a ranking go to the smaller input index.
- ``keep`` holds int64 indices into the input; scores and boxes keep the input dtype. Empty
  inputs give empty outputs.
- Hyper-parameters are checked on the host (they are Python floats): IoU thresholds must lie in
  ``[-1, 1]`` (``IoU > t`` with IoU in ``[0, 1]``: a negative ``t`` also takes disjoint boxes,
  ``t = 1`` takes none), score thresholds must be finite, widths (``sigma``, ``sigma_t``,
  ``soft_sigma``) finite and > 0. NaN is rejected everywhere (it would silently disable a
  comparison). Each violation is a one-line ``ValueError`` naming the argument.
- Tensor *values* (finite boxes and scores, positive variances) are checked on the host for CPU
  tensors only: on CUDA that would be a device->host sync per call, so there it is opt-in with
  ``D2_BOXUNC_CHECK_VALUES=1`` (docs/gpu.md#host-syncs). Unchecked non-finite values do not crash
  the kernels, but their results are unspecified.

The ops are inference-only: inputs are detached, and no gradient flows through them.
"""

import math

import torch
from torch import Tensor

from d2_boxunc import _extension

__all__ = [
    "batched_diou_nms",
    "batched_iou_guided_nms",
    "batched_kl_nms",
    "batched_soft_nms",
    "diou_nms",
    "iou_guided_nms",
    "kl_nms",
    "soft_nms",
    "var_voting",
]

_SOFT_NMS_METHODS = {"linear": 0, "gaussian": 1, "hard": 2}


def _check_boxes(boxes: Tensor, name: str) -> None:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a Tensor of shape (N, 4), got {type(boxes).__name__}")
    if boxes.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {boxes.dtype}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {tuple(boxes.shape)}")
    _extension.check_device_supported(boxes, name)


def _check_like(t: Tensor, name: str, boxes: Tensor, shape: tuple[int, ...], dtype=None) -> None:
    """t must be a tensor of the given shape on boxes' device, with boxes' dtype (or `dtype`)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a Tensor of shape {shape}, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if dtype is None and t.dtype != boxes.dtype:
        raise TypeError(f"{name} must have the dtype of boxes ({boxes.dtype}), got {t.dtype}")
    if dtype is not None and t.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}, got {t.dtype}")
    if t.device != boxes.device:
        raise ValueError(f"{name} must be on the device of boxes ({boxes.device}), got {t.device}")


def _check_values(t: Tensor, name: str, positive: bool = False) -> None:
    """Value checks: eager only (a data-dependent branch cannot be traced by torch.compile), and
    only where they need no device->host sync: CPU tensors, or any device with
    ``D2_BOXUNC_CHECK_VALUES=1`` (see :func:`d2_boxunc._extension.host_value_checks`)."""
    if not _extension.host_value_checks(t) or t.numel() == 0:
        return
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    if positive and not bool((t > 0).all()):
        raise ValueError(f"{name} must be positive variances (found values <= 0)")


def _check_idxs(idxs: Tensor, boxes: Tensor) -> Tensor:
    if not isinstance(idxs, Tensor) or idxs.dtype.is_floating_point or idxs.dtype == torch.bool:
        raise TypeError("idxs must be an integer Tensor of shape (N,) with the class of each box")
    _check_like(idxs, "idxs", boxes, (boxes.shape[0],), dtype=idxs.dtype)
    return idxs.detach().long()


def _as_float(value: float, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}") from None


def _check_positive(value: float, name: str) -> float:
    """A Gaussian width: finite and > 0 (NaN and inf fail both comparisons)."""
    v = _as_float(value, name)
    if not 0 < v < math.inf:
        raise ValueError(f"{name} must be > 0 and finite, got {value!r}")
    return v


def _check_iou_threshold(value: float, name: str) -> float:
    """A strict IoU threshold (``IoU > t``, IoU in [0, 1]): in [-1, 1]; negative also takes
    disjoint boxes (IoU 0), 1 takes none. Beyond that range it is a unit mistake (50 for 0.5)."""
    v = _as_float(value, name)
    if not -1.0 <= v <= 1.0:
        raise ValueError(
            f"{name} must be in [-1, 1] (boxes are compared by IoU > {name}), got {value!r}"
        )
    return v


def _check_score_threshold(value: float, name: str) -> float:
    v = _as_float(value, name)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return v


def _soft_nms_args(boxes, scores, method, sigma, iou_threshold, score_threshold) -> tuple:
    _extension.assert_has_ops()
    _check_boxes(boxes, "boxes")
    _check_like(scores, "scores", boxes, (boxes.shape[0],))
    if method not in _SOFT_NMS_METHODS:
        raise ValueError(f"method must be one of {sorted(_SOFT_NMS_METHODS)}, got {method!r}")
    # sigma is read by "gaussian" only (the other methods accept any value, as before)
    sigma = _check_positive(sigma, "sigma") if method == "gaussian" else _as_float(sigma, "sigma")
    iou_threshold = _check_iou_threshold(iou_threshold, "iou_threshold")
    score_threshold = _check_score_threshold(score_threshold, "score_threshold")
    _check_values(boxes, "boxes")
    _check_values(scores, "scores")
    return sigma, iou_threshold, score_threshold, _SOFT_NMS_METHODS[method]


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    method: str = "gaussian",
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: float = 0.001,
) -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al., ICCV 2017) on one class.

    Boxes with an initial score below ``score_threshold`` are dropped. Then, repeatedly, the
    remaining box with the highest current score is selected, and every other remaining box is
    decayed by ``w(IoU)`` and dropped once its score falls below ``score_threshold``:
    ``"linear"``: ``1 - IoU`` if ``IoU > iou_threshold`` else 1; ``"gaussian"``:
    ``exp(-IoU^2 / sigma)``; ``"hard"``: 0 if ``IoU > iou_threshold`` else 1 (with
    ``score_threshold <= 0`` a hard-suppressed box survives with score 0).

    Args:
        boxes (Tensor[N, 4]): xyxy boxes, float32 or float64.
        scores (Tensor[N]): scores, same dtype.
        method (str): "linear", "gaussian" or "hard". Default: "gaussian".
        sigma (float): Gaussian width, > 0; used only by "gaussian". Default: 0.5.
        iou_threshold (float): overlap above which "linear"/"hard" decay, in [-1, 1]. Default: 0.3.
        score_threshold (float): survival threshold (inclusive), finite. Default: 0.001.

    Returns:
        keep (Tensor[K] int64): selected indices, in selection order.
        scores (Tensor[K]): decayed score of each kept box when it was selected.
    """
    args = _soft_nms_args(boxes, scores, method, sigma, iou_threshold, score_threshold)
    return torch.ops.d2_boxunc.soft_nms(boxes.detach(), scores.detach(), None, *args)


def batched_soft_nms(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor,
    method: str = "gaussian",
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: float = 0.001,
) -> tuple[Tensor, Tensor]:
    """:func:`soft_nms` run independently per class ``idxs`` (Tensor[N] int); boxes of different
    classes never interact, whatever their coordinates. The result is sorted by decreasing output
    score; equal scores keep the order (class id ascending, then selection order)."""
    args = _soft_nms_args(boxes, scores, method, sigma, iou_threshold, score_threshold)
    idxs = _check_idxs(idxs, boxes)
    keep, out = torch.ops.d2_boxunc.soft_nms(boxes.detach(), scores.detach(), idxs, *args)
    order = torch.sort(out, descending=True, stable=True).indices
    return keep[order], out[order]


def _iou_nms_args(boxes, cls_scores, pred_ious, iou_threshold, multiply_cls) -> tuple:
    _extension.assert_has_ops()
    _check_boxes(boxes, "boxes")
    _check_like(cls_scores, "cls_scores", boxes, (boxes.shape[0],))
    _check_like(pred_ious, "pred_ious", boxes, (boxes.shape[0],))
    iou_threshold = _check_iou_threshold(iou_threshold, "iou_threshold")
    for t, name in ((boxes, "boxes"), (cls_scores, "cls_scores"), (pred_ious, "pred_ious")):
        _check_values(t, name)
    cls_scores, pred_ious = cls_scores.detach(), pred_ious.detach()
    return cls_scores, pred_ious * cls_scores if multiply_cls else pred_ious, iou_threshold


def iou_guided_nms(
    boxes: Tensor,
    cls_scores: Tensor,
    pred_ious: Tensor,
    iou_threshold: float,
    multiply_cls: bool = False,
) -> tuple[Tensor, Tensor]:
    """IoU-guided NMS (Jiang et al., ECCV 2018, Alg. 1) on one class.

    Greedy NMS ranked by the predicted localisation quality instead of the cls score. Each box is
    suppressed by the first kept box, in key order, that overlaps it by ``IoU > iou_threshold``;
    a kept box's output score is the max cls score over itself and the boxes it suppressed.

    Args:
        boxes (Tensor[N, 4]): xyxy boxes, float32 or float64.
        cls_scores (Tensor[N]): classification scores.
        pred_ious (Tensor[N]): predicted IoU of each box with its object.
        iou_threshold (float): suppression threshold (strict), in [-1, 1].
        multiply_cls (bool): rank by ``pred_ious * cls_scores`` instead of ``pred_ious``.

    Returns:
        keep (Tensor[K] int64): kept indices in decreasing key order (ties: smaller index first).
        out_scores (Tensor[K]): max cls score of each kept box's cluster. Re-sorting by it is the
        caller's choice.
    """
    cls_scores, key, iou_threshold = _iou_nms_args(
        boxes, cls_scores, pred_ious, iou_threshold, multiply_cls
    )
    return torch.ops.d2_boxunc.iou_guided_nms(boxes.detach(), cls_scores, key, None, iou_threshold)


def batched_iou_guided_nms(
    boxes: Tensor,
    cls_scores: Tensor,
    pred_ious: Tensor,
    idxs: Tensor,
    iou_threshold: float,
    multiply_cls: bool = False,
) -> tuple[Tensor, Tensor]:
    """:func:`iou_guided_nms` per class ``idxs``; the classes are separated inside the op (no
    coordinate offsets, so any coordinates work) and the result is merged by decreasing key,
    ties to the smaller index."""
    cls_scores, key, iou_threshold = _iou_nms_args(
        boxes, cls_scores, pred_ious, iou_threshold, multiply_cls
    )
    idxs = _check_idxs(idxs, boxes)
    return torch.ops.d2_boxunc.iou_guided_nms(boxes.detach(), cls_scores, key, idxs, iou_threshold)


def _diou_nms_args(boxes, scores, iou_threshold) -> float:
    _extension.assert_has_ops()
    _check_boxes(boxes, "boxes")
    _check_like(scores, "scores", boxes, (boxes.shape[0],))
    iou_threshold = _check_iou_threshold(iou_threshold, "iou_threshold")
    _check_values(boxes, "boxes")
    _check_values(scores, "scores")
    return iou_threshold


def diou_nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """DIoU-NMS (Zheng et al., "Distance-IoU Loss", AAAI 2020, Eq. 10) on one class.

    Greedy NMS by decreasing score whose overlap is ``IoU - rho^2 / c^2`` (rho: distance of the
    box centres; c: diagonal of the smallest box enclosing both; the penalty is 0 when c is 0):
    each box is suppressed by the first kept box with ``IoU - rho^2 / c^2 > iou_threshold``. Of
    two boxes with the same IoU, the one whose centre is farther from the kept box survives, so
    two objects side by side are kept more often than with IoU-based NMS.

    Args:
        boxes (Tensor[N, 4]): xyxy boxes, float32 or float64.
        scores (Tensor[N]): scores, same dtype.
        iou_threshold (float): suppression threshold (strict), in [-1, 1]; a negative threshold
            can suppress disjoint boxes (their overlap is ``-rho^2 / c^2``).

    Returns:
        Tensor[K] int64: kept indices in decreasing score order (ties: smaller index first).
    """
    iou_threshold = _diou_nms_args(boxes, scores, iou_threshold)
    return torch.ops.d2_boxunc.diou_nms(boxes.detach(), scores.detach(), None, iou_threshold)


def batched_diou_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """:func:`diou_nms` per class ``idxs``, as torchvision's ``batched_nms`` for NMS; the classes
    are separated inside the op (no coordinate offsets: with a negative threshold DIoU-NMS also
    suppresses disjoint boxes, so offsets would not separate them). The result is ordered by
    decreasing score, ties to the smaller index."""
    iou_threshold = _diou_nms_args(boxes, scores, iou_threshold)
    idxs = _check_idxs(idxs, boxes)
    return torch.ops.d2_boxunc.diou_nms(boxes.detach(), scores.detach(), idxs, iou_threshold)


def var_voting(
    kept_boxes: Tensor,
    candidate_boxes: Tensor,
    candidate_vars: Tensor,
    sigma_t: float = 0.02,
    iou_threshold: float = 0.0,
) -> Tensor:
    """KL-Loss variance voting (He et al., CVPR 2019, Eq. 11) of kept boxes over candidates.

    Each coordinate k of a kept box becomes the weighted mean of the candidates' coordinate k over
    candidates with ``IoU > iou_threshold``, weights ``exp(-(1 - IoU)^2 / sigma_t) / var[k]``. The
    weights are normalised in the log domain, so variances from 1e-30 to 1e30 cannot overflow. A
    kept box without voters is returned unchanged.

    Args:
        kept_boxes (Tensor[M, 4]): boxes to refine.
        candidate_boxes (Tensor[N, 4]): voters (usually the kept boxes' cluster, themselves included).
        candidate_vars (Tensor[N, 4]): positive variances sigma^2 per candidate coordinate.
        sigma_t (float): IoU-closeness width, > 0. Default: 0.02.
        iou_threshold (float): voters need IoU above it (strict), in [-1, 1]. Default: 0.0.

    Returns:
        Tensor[M, 4]: voted boxes.
    """
    _extension.assert_has_ops()
    _check_boxes(kept_boxes, "kept_boxes")
    _check_boxes(candidate_boxes, "candidate_boxes")
    n = candidate_boxes.shape[0]
    _check_like(candidate_boxes, "candidate_boxes", kept_boxes, (n, 4))
    _check_like(candidate_vars, "candidate_vars", kept_boxes, (n, 4))
    sigma_t = _check_positive(sigma_t, "sigma_t")
    iou_threshold = _check_iou_threshold(iou_threshold, "iou_threshold")
    _check_values(kept_boxes, "kept_boxes")
    _check_values(candidate_boxes, "candidate_boxes")
    _check_values(candidate_vars, "candidate_vars", positive=True)
    return torch.ops.d2_boxunc.var_voting(
        kept_boxes.detach(),
        candidate_boxes.detach(),
        candidate_vars.detach(),
        sigma_t,
        iou_threshold,
    )


def _kl_nms_call(
    boxes,
    scores,
    log_vars,
    idxs,
    iou_threshold,
    score_threshold,
    sigma_t,
    soft,
    soft_sigma,
    vote_iou_threshold,
) -> tuple[Tensor, Tensor, Tensor]:
    _extension.assert_has_ops()
    _check_boxes(boxes, "boxes")
    _check_like(scores, "scores", boxes, (boxes.shape[0],))
    if log_vars is not None:
        _check_like(log_vars, "log_vars", boxes, (boxes.shape[0], 4))
    iou_threshold = _check_iou_threshold(iou_threshold, "iou_threshold")
    score_threshold = _check_score_threshold(score_threshold, "score_threshold")
    sigma_t = _check_positive(sigma_t, "sigma_t")
    vote_iou_threshold = _check_iou_threshold(vote_iou_threshold, "vote_iou_threshold")
    # soft_sigma is read by soft suppression only (hard mode accepts any value, as before)
    soft_sigma = (
        _check_positive(soft_sigma, "soft_sigma") if soft else _as_float(soft_sigma, "soft_sigma")
    )
    _check_values(boxes, "boxes")
    _check_values(scores, "scores")
    if log_vars is not None:
        _check_values(log_vars, "log_vars")
        log_vars = log_vars.detach()
    return torch.ops.d2_boxunc.kl_nms(
        boxes.detach(),
        scores.detach(),
        log_vars,
        idxs,
        iou_threshold,
        score_threshold,
        sigma_t,
        vote_iou_threshold,
        bool(soft),
        soft_sigma,
    )


def kl_nms(
    boxes: Tensor,
    scores: Tensor,
    log_vars: Tensor | None,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.001,
    sigma_t: float = 0.02,
    soft: bool = False,
    soft_sigma: float = 0.5,
    vote_iou_threshold: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """KL-Loss inference on one class (He et al., CVPR 2019, Alg. 1; see
    docs/design.md#variance-voting-and-soft-nms).

    Boxes with an initial score below ``score_threshold`` are dropped. Then, repeatedly: select
    the remaining box m with the highest current score; replace its coordinates by the vote of m
    and the not-yet-selected boxes i with ``IoU(b_m, b_i) > vote_iou_threshold`` (weights
    ``exp(-(1 - IoU)^2 / sigma_t - log_vars[i, k])``, IoUs of the *un-voted* box; the score is not
    changed); then suppress: hard (``soft=False``) removes boxes with ``IoU > iou_threshold``,
    soft multiplies scores by ``exp(-IoU^2 / soft_sigma)``; finally drop scores below
    ``score_threshold``.

    Args:
        boxes (Tensor[N, 4]): xyxy boxes, float32 or float64.
        scores (Tensor[N]): scores, same dtype.
        log_vars (Tensor[N, 4] or None): alpha = log sigma^2 of each coordinate, in (x1,y1,x2,y2)
            order; None disables voting.
        iou_threshold (float): hard-suppression threshold (strict), in [-1, 1]. Default: 0.5.
        score_threshold (float): survival threshold (inclusive), finite. Default: 0.001.
        sigma_t (float): voting IoU-closeness width, > 0. Default: 0.02.
        soft (bool): Gaussian soft suppression instead of hard. Default: False.
        soft_sigma (float): width of the Gaussian decay, > 0; read when ``soft``. Default: 0.5.
        vote_iou_threshold (float): voters need IoU above it (strict), in [-1, 1]. Default: 0.0
            (paper).

    Returns:
        keep (Tensor[K] int64): selected indices in selection order.
        boxes (Tensor[K, 4]): voted boxes (the input boxes when ``log_vars`` is None).
        scores (Tensor[K]): score of each kept box when it was selected.
    """
    return _kl_nms_call(
        boxes,
        scores,
        log_vars,
        None,
        iou_threshold,
        score_threshold,
        sigma_t,
        soft,
        soft_sigma,
        vote_iou_threshold,
    )


def batched_kl_nms(
    boxes: Tensor,
    scores: Tensor,
    log_vars: Tensor | None,
    idxs: Tensor,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.001,
    sigma_t: float = 0.02,
    soft: bool = False,
    soft_sigma: float = 0.5,
    vote_iou_threshold: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`kl_nms` run independently per class ``idxs`` (voters and suppression stay within a
    class). The result is sorted by decreasing output score; equal scores keep the order (class id
    ascending, then selection order)."""
    _check_boxes(boxes, "boxes")
    idxs = _check_idxs(idxs, boxes)
    keep, voted, out = _kl_nms_call(
        boxes,
        scores,
        log_vars,
        idxs,
        iou_threshold,
        score_threshold,
        sigma_t,
        soft,
        soft_sigma,
        vote_iou_threshold,
    )
    order = torch.sort(out, descending=True, stable=True).indices
    return keep[order], voted[order], out[order]
