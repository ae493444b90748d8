"""Slow pure-PyTorch versions of the compiled ops: test oracles and (PrRoIPool) a CPU fallback."""

from .nms import (
    batched_diou_nms,
    batched_iou_guided_nms,
    batched_kl_nms,
    batched_soft_nms,
    diou_nms,
    iou_guided_nms,
    kl_nms,
    soft_nms,
    var_voting,
)
from .prroi_pool import prroi_pool

__all__ = [
    "batched_diou_nms",
    "batched_iou_guided_nms",
    "batched_kl_nms",
    "batched_soft_nms",
    "diou_nms",
    "iou_guided_nms",
    "kl_nms",
    "prroi_pool",
    "soft_nms",
    "var_voting",
]
