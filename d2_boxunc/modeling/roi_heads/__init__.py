"""ROI heads and box predictors (registered in detectron2's registries on import)."""

from d2_boxunc.modeling.roi_heads.iou_head import IoUHead  # noqa: F401
from d2_boxunc.modeling.roi_heads.iou_loss_fast_rcnn import (  # noqa: F401
    IoULossFastRCNNOutputLayers,
    IoULossROIHeads,
)
from d2_boxunc.modeling.roi_heads.iou_net_cascade import IoUNetCascadeROIHeads  # noqa: F401
from d2_boxunc.modeling.roi_heads.iou_net_roi_heads import IoUNetROIHeads  # noqa: F401
from d2_boxunc.modeling.roi_heads.iou_roi_generator import IoURoIGenerator  # noqa: F401
from d2_boxunc.modeling.roi_heads.kl_fast_rcnn import KLFastRCNNOutputLayers, KLROIHeads  # noqa: F401
from d2_boxunc.modeling.roi_heads.registry import ROI_IOU_HEAD_REGISTRY, build_iou_head  # noqa: F401
