"""ROI heads, box predictors and the IoU-Net pieces (LazyConfig ``_target_``s)."""

from d2_boxunc.modeling.roi_heads.alrp_fast_rcnn import (  # noqa: F401
    ALRPFastRCNNOutputLayers,
    ALRPROIHeads,
)
from d2_boxunc.modeling.roi_heads.iou_head import IoUHead  # noqa: F401
from d2_boxunc.modeling.roi_heads.iou_loss_fast_rcnn import IoULossFastRCNNOutputLayers  # noqa: F401
from d2_boxunc.modeling.roi_heads.iou_net_cascade import IoUNetCascadeROIHeads  # noqa: F401
from d2_boxunc.modeling.roi_heads.iou_net_roi_heads import IoUNetROIHeads  # noqa: F401
from d2_boxunc.modeling.roi_heads.iou_roi_generator import IoURoIGenerator  # noqa: F401
from d2_boxunc.modeling.roi_heads.kl_fast_rcnn import KLFastRCNNOutputLayers  # noqa: F401
from d2_boxunc.modeling.roi_heads.kl_iou_loss_fast_rcnn import (  # noqa: F401
    KLIoULossFastRCNNOutputLayers,
)
from d2_boxunc.modeling.roi_heads.kl_iou_net_roi_heads import KLIoUNetROIHeads  # noqa: F401
