"""Registries of d2_boxunc's new head types."""

from detectron2.layers import ShapeSpec
from detectron2.utils.registry import Registry

__all__ = ["ROI_IOU_HEAD_REGISTRY", "build_iou_head"]

ROI_IOU_HEAD_REGISTRY = Registry("ROI_IOU_HEAD")
ROI_IOU_HEAD_REGISTRY.__doc__ = """
Registry for IoU-prediction heads (IoU-Net), which map pooled per-RoI features (M, C, H, W) to
raw localisation-confidence outputs (M, K) or (M, 1).

The registered object is called with ``obj(cfg, input_shape)`` (``@configurable`` classes).
The name is read from ``cfg.MODEL.ROI_IOU_HEAD.NAME``.
"""


def build_iou_head(cfg, input_shape: ShapeSpec):
    """Build the IoU head named by ``cfg.MODEL.ROI_IOU_HEAD.NAME``."""
    name = cfg.MODEL.ROI_IOU_HEAD.NAME
    return ROI_IOU_HEAD_REGISTRY.get(name)(cfg, input_shape)
