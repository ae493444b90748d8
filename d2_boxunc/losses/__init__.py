"""Pure loss functions (no module state), shared by the ROI heads, the RPN and RetinaNet.

Each takes a ``reduction`` argument (``"none"``, ``"sum"`` or ``"mean"``) and computes in float32
or higher whatever the input dtype.
"""

from d2_boxunc.losses.kl_loss import kl_loss
from d2_boxunc.losses.iou_losses import IOU_LOSS_MODES, iou_loss

__all__ = ["kl_loss", "iou_loss", "IOU_LOSS_MODES"]
