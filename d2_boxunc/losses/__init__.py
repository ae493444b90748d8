"""Pure loss functions (no module state), shared by the ROI heads, the RPN and RetinaNet.

Each takes a ``reduction`` argument (``"none"``, ``"sum"`` or ``"mean"``) and computes in float32
or higher whatever the input dtype.
"""

from d2_boxunc.losses.alrp_loss import alrp_cls, alrp_loc, ap_loss
from d2_boxunc.losses.iou_losses import IOU_LOSS_MODES, iou_loss
from d2_boxunc.losses.kl_loss import kl_loss

__all__ = ["IOU_LOSS_MODES", "alrp_cls", "alrp_loc", "ap_loss", "iou_loss", "kl_loss"]
