"""Compiled ops and their Python wrappers."""

from d2_boxunc import ops  # noqa: F401  (fake kernels, autograd and autocast of the compiled ops)
from d2_boxunc.layers.nms import (
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
from d2_boxunc.layers.prroi_pool import PrRoIPool, prroi_pool

__all__ = [
    "PrRoIPool",
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
