"""Slow pure-PyTorch versions of the compiled ops: test oracles, written for clarity not speed."""

from .nms import (
    batched_iou_guided_nms,
    batched_kl_nms,
    batched_soft_nms,
    iou_guided_nms,
    kl_nms,
    soft_nms,
    var_voting,
)

__all__ = [
    "batched_iou_guided_nms",
    "batched_kl_nms",
    "batched_soft_nms",
    "iou_guided_nms",
    "kl_nms",
    "soft_nms",
    "var_voting",
]
