"""KL-Loss pieces shared by every head with a log-variance output (the R-CNN predictor
``KLFastRCNNOutputLayers`` and ``BoxUncRetinaNet``'s sigma branch; docs/kl.md,
docs/retinanet_heads.md).

- :func:`log_variance_stats`: the ``kl/`` training scalars of the positives' alpha;
- :func:`check_kl_test_settings`: one validation of the suppression / voting settings;
- :func:`delta_std_scale`: the factor that turns a corner-delta std into pixels, from the
  reference box the deltas are relative to (an R-CNN proposal or a RetinaNet anchor);
- :func:`kl_nms_detections`: hard or soft NMS with optional variance voting on candidate
  detections, through :func:`d2_boxunc.layers.batched_kl_nms`;
- :func:`scale_boxes_std`: rescale a pixel std with its boxes (detectron2's post-processing
  rescales ``pred_boxes`` only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from detectron2.utils.events import get_event_storage
from torch import Tensor

from d2_boxunc.layers import batched_diou_nms, batched_kl_nms

__all__ = [
    "KL_DEFAULTS",
    "KLDefaults",
    "NMS_METHODS",
    "VARIANCE_SPACES",
    "check_kl_test_settings",
    "delta_std_scale",
    "kl_nms_detections",
    "log_variance_stats",
    "scale_boxes_std",
]

NMS_METHODS = ("hard", "soft", "diou")
VARIANCE_SPACES = ("delta", "pixel")


@dataclass(frozen=True)
class KLDefaults:
    """The one place of the KL loss and inference defaults that every log-variance head takes
    (``KLFastRCNNOutputLayers``, ``BoxUncRetinaNet``): their signatures read them from
    :data:`KL_DEFAULTS`. ``sigma_t`` / ``vote_iou_thresh`` follow the mmdetection reimplementation
    (docs/kl.md)."""

    kl_smooth_l1_beta: float = 1.0
    alpha_clamp: tuple[float, float] | None = None
    test_nms_method: str = "hard"
    test_var_voting: bool = False
    sigma_t: float = 0.02
    vote_iou_thresh: float = 0.0
    soft_nms_sigma: float = 0.5
    prune_thresh: float = 0.001
    variance_space: str = "delta"


KL_DEFAULTS = KLDefaults()


def log_variance_stats(alpha: Tensor) -> None:
    """Log mean / min / max of ``alpha`` (non-empty) and the mean sigma, when a trainer's event
    storage is open."""
    try:
        storage = get_event_storage()
    except AssertionError:  # called outside a trainer (tests, notebooks)
        return
    storage.put_scalar("kl/alpha_mean", alpha.mean().item())
    storage.put_scalar("kl/alpha_min", alpha.min().item())
    storage.put_scalar("kl/alpha_max", alpha.max().item())
    storage.put_scalar("kl/sigma_mean", alpha.mul(0.5).exp().mean().item())


def check_kl_test_settings(
    test_nms_method: str,
    variance_space: str,
    sigma_t: float,
    soft_nms_sigma: float,
    test_var_voting: bool = False,
) -> None:
    """Raise ``ValueError`` for an unknown method / space, a non-positive width, or voting with
    DIoU-NMS (the voting loop suppresses by IoU)."""
    if test_nms_method not in NMS_METHODS:
        raise ValueError(f"test_nms_method must be one of {NMS_METHODS}, got {test_nms_method!r}")
    if test_nms_method == "diou" and test_var_voting:
        raise ValueError(
            "test_var_voting needs test_nms_method 'hard' or 'soft' (the voting loop suppresses "
            "by IoU), got 'diou'"
        )
    if variance_space not in VARIANCE_SPACES:
        raise ValueError(f"variance_space must be one of {VARIANCE_SPACES}, got {variance_space!r}")
    for name, value in (("sigma_t", sigma_t), ("soft_nms_sigma", soft_nms_sigma)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")


def delta_std_scale(ref_boxes: Tensor, weights) -> Tensor:
    """(R, 4): per coordinate, the pixels per delta unit of the corner coder
    (``Box2BoxTransformXYXY``): the reference box's width (x1, x2) or height (y1, y2) divided by
    that coordinate's weight. A std in delta units times this is a std in pixels."""
    w = (ref_boxes[:, 2] - ref_boxes[:, 0]).clamp(min=1e-6)
    h = (ref_boxes[:, 3] - ref_boxes[:, 1]).clamp(min=1e-6)
    # the weights stay Python numbers: a tensor of them is a host->device copy (a CUDA sync)
    return torch.stack([s / k for s, k in zip((w, h, w, h), weights)], dim=1)


def kl_nms_detections(
    boxes: Tensor,
    scores: Tensor,
    alpha: Tensor,
    classes: Tensor,
    scale: Tensor,
    *,
    test_nms_method: str,
    test_var_voting: bool,
    nms_thresh: float,
    sigma_t: float,
    vote_iou_thresh: float,
    soft_nms_sigma: float,
    prune_thresh: float,
    variance_space: str,
    topk: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-class suppression (and voting) of candidate detections.

    Args:
        boxes (Tensor[N, 4]), scores (Tensor[N]), classes (Tensor[N]): the candidates.
        alpha (Tensor[N, 4]): their log-variances in delta units.
        scale (Tensor[N, 4]): :func:`delta_std_scale` of their reference boxes; with
            ``variance_space="pixel"`` the vote uses ``alpha + 2 log scale`` (pixels).
        test_nms_method: ``"hard"``, ``"soft"`` (Gaussian, ``soft_nms_sigma``; boxes whose
            decayed score falls below ``prune_thresh`` are dropped) or ``"diou"`` (DIoU-NMS,
            no voting).
        test_var_voting: replace each kept box by the variance vote of its cluster.
        topk: keep at most this many (< 0: all).
    Returns:
        ``(keep, boxes, scores)``: indices into the candidates, by decreasing output score, and
        the (voted) boxes and scores of those detections.
    """
    if test_nms_method == "diou":
        keep = batched_diou_nms(boxes, scores, classes, nms_thresh)
        keep = keep[:topk] if topk >= 0 else keep
        return keep, boxes[keep], scores[keep]
    vote_alpha = None
    if test_var_voting:
        vote_alpha = alpha if variance_space == "delta" else alpha + 2.0 * scale.log()
    keep, voted, out_scores = batched_kl_nms(
        boxes,
        scores,
        vote_alpha,
        classes,
        iou_threshold=nms_thresh,
        score_threshold=prune_thresh if test_nms_method == "soft" else 0.0,
        sigma_t=sigma_t,
        soft=test_nms_method == "soft",
        soft_sigma=soft_nms_sigma,
        vote_iou_threshold=vote_iou_thresh,
    )
    if topk >= 0:
        keep, voted, out_scores = keep[:topk], voted[:topk], out_scores[:topk]
    return keep, voted, out_scores


def scale_boxes_std(std: Tensor, from_hw, to_hw) -> Tensor:
    """``std`` (k, 4) of boxes in an image of size ``from_hw`` -> the std of the same boxes
    resized to ``to_hw`` (the factors ``detector_postprocess`` applies to ``pred_boxes``)."""
    sx, sy = float(to_hw[1]) / float(from_hw[1]), float(to_hw[0]) / float(from_hw[0])
    return std * torch.tensor([sx, sy, sx, sy], dtype=std.dtype, device=std.device)
