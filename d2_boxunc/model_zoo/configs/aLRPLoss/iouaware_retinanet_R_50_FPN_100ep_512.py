"""A0i: IoU-aware RetinaNet R50-FPN (Wu et al., "IoU-aware single-stage object detector for
accurate localization", https://github.com/ShengkaiWu/IoU-aware-single-stage-object-detector) on
the focal baseline's recipe (docs/retinanet_heads.md#iou-branch).

The focal-loss row (``focal_retinanet_R_50_FPN_100ep_512.py``: anchors, coder (10, 10, 5, 5),
smooth-L1 beta 1, SSD data at 512, 100 epochs, lr 0.02) with the head's IoU branch: a 3x3
convolution on the regression tower predicting each anchor's IoU with its object, trained with
BCE (weight 1) against the IoU of the decoded box on the positives (target detached); test
score ``cls^(1 - alpha) * IoU^alpha`` with alpha 0.5 before RetinaNet's thresholding, top-k and
NMS. ``model.iou_score_alpha=0`` ranks the same checkpoint by the class score alone.

Deviations from the official recipe (the reference's mmdetection 1.x RetinaNet, 1x schedule at
800): the focal baseline's recipe instead (SSD-style 512 training, 100 epochs, MSRA caffe R-50
with FrozenBN), one weight per term (the reference's IoU-balanced classification and
localisation variants are not used), and the IoU branch's loss normalised by detectron2's running
count of positives, like the focal loss.
"""

from ..common.alrp import use_iou_branch as _use_iou_branch
from .focal_retinanet_R_50_FPN_100ep_512 import dataloader, lr_multiplier, model, optimizer, train

_use_iou_branch(model)
train.output_dir = "./output/iouaware_retinanet_R_50_FPN_100ep_512"
