"""ROI heads and box predictors (registered in detectron2's registries on import)."""

from d2_boxunc.modeling.roi_heads.kl_fast_rcnn import KLFastRCNNOutputLayers, KLROIHeads  # noqa: F401
from d2_boxunc.modeling.roi_heads.iou_loss_fast_rcnn import (  # noqa: F401
    IoULossFastRCNNOutputLayers,
    IoULossROIHeads,
)
