"""C2: aLRP Loss RetinaNet with a KL-Loss sigma branch and variance voting (our composition;
docs/retinanet_heads.md#alrp-and-sigma).

What is composed, and why: aLRP Loss (Oksuz et al., NeurIPS 2020) trains the classifier to rank
detections by localisation quality, but gives no per-coordinate uncertainty; KL-Loss (He et al.,
CVPR 2019) learns a sigma for each box corner and uses it to vote boxes at test time. Here aLRP's
ranking and localisation terms train the classifier and the boxes exactly as in A1
(``aLRPLoss/alrp_retinanet_R_50_FPN_100ep_512.py``), and the KL loss, on detached deltas, trains
only the sigma branch (``loss_box_var``; its gradient reaches the branch and, through it, the
regression tower and backbone, never the deltas or the classifier); variance voting then refines
the boxes that aLRP ranked. The question it answers: does voting with learnt sigmas add AP90 on
top of a ranking-based loss, as it does for KL-Loss's own R-CNN?

A1's recipe (aLRP with GIoU error and self-balance, SSD data at 512, 100 epochs, lr 0.008) with the
sigma branch, KL-Loss's corner coder x10 (one sigma per corner; A1 uses (10, 10, 5, 5) XYWH deltas,
the aLRP localisation error being a GIoU of decoded boxes either way) and voting after hard NMS
(sigma_t 0.02, voters with IoU > 0). ``model.test_var_voting=False`` evaluates the same checkpoint
without voting.

Deviations from the official recipe: not an official row; A1's (MSRA caffe R-50 with FrozenBN,
uint8 clipping of the photometric distortion) plus the corner coder.
"""

from ..aLRPLoss.alrp_retinanet_R_50_FPN_100ep_512 import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from ..common.alrp import use_sigma_branch as _use_sigma_branch

_use_sigma_branch(model)
train.output_dir = "./output/alrp_sigma_retinanet_R_50_FPN_100ep_512"
