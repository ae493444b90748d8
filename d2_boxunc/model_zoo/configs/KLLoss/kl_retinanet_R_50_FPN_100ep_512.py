"""R-K1: RetinaNet R50-FPN with a sigma branch trained by KL-Loss, tested with variance voting
(our composition, not a paper row; docs/retinanet_heads.md).

KL-Loss (He et al., CVPR 2019) on a one-stage detector: the focal-loss baseline of the aLRP rows
(``aLRPLoss/focal_retinanet_R_50_FPN_100ep_512.py``: same anchors, SSD data at 512, 100 epochs,
lr 0.02) with
- KL-Loss's corner coder (x10), the anchors playing the part of the R-CNN proposals: one delta,
  hence one sigma, per box corner, as variance voting needs;
- the head's sigma branch (a 3x3 convolution beside ``bbox_pred``, init std 1e-4) and the KL loss
  (smooth-L1 beta 1 inside) in place of the smooth-L1 box loss, same normalisation;
- test: RetinaNet's hard NMS 0.5 with variance voting (sigma_t 0.02, voters with IoU > 0, as the
  R-CNN row K2); ``model.test_var_voting=False`` gives the same checkpoint without voting,
  ``model.test_nms_method=soft`` adds soft-NMS.

Deviations from the official recipe: there is no official KL-Loss RetinaNet; the recipe is the
focal baseline's (its deviations: MSRA caffe R-50 with FrozenBN, uint8 clipping of the
photometric distortion), and the box coder changes from (10, 10, 5, 5) XYWH to corner deltas x10,
which ``configs/common/alrp.py:use_sigma_branch`` sets.
"""

from ..aLRPLoss.focal_retinanet_R_50_FPN_100ep_512 import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from ..common.alrp import use_sigma_branch as _use_sigma_branch

_use_sigma_branch(model)
train.output_dir = "./output/kl_retinanet_R_50_FPN_100ep_512"
