"""K1 official: KL-Loss Faster R-CNN R50-FPN 2x in the recipe of the official code
(https://github.com/ethanhe42/KL-Loss, ``configs/e2e_faster_rcnn_R-50-FPN_2x.yaml``; README: 38.5
box AP without voting, 39.2 with ``STD_NMS True``, i.e. K3):

- starts from Detectron's COCO-trained Faster R-CNN R50-FPN 2x (the official ``TRAIN.WEIGHTS``
  URL below; detectron2 converts Detectron's names and moves the background class) and trains
  another 2x (180k iterations at 16 images, steps 120k / 160k);
- corner (XYXY) deltas in the RPN as well (``XYXY: True`` switches Detectron's coder everywhere;
  the RPN's weights are 1, the Fast R-CNN head's x10), both clamped at 1000/16;
- single-scale 800 / 1333, warm-up 500 iterations from 1/3, RoIAlign sampling ratio 2, RPN
  smooth-L1 beta 1/9, KL loss with smooth-L1 beta 1, alpha init std 1e-4;
- test (used by the eval twins): sigma_t = ``STD.IOU_SIGMA`` 0.01 and voters with IoU > 0.01
  (``STD_TH`` 0.9 is replaced by 0.01 for the ``stdiou`` method), Gaussian soft-NMS sigma 0.5,
  pruning at 0.001. This config tests with hard NMS, no voting (the README's 38.5).

Deviations from the official recipe: those of K0 official (no "+1", detectron2's pixel mean, 1000
RPN proposals per image); the official voting pairs the coordinates with variances stored in
another order (docs/design.md#paper-vs-code-differences), ours pairs them correctly. The eval-only
twins ``*_varvote_official.py`` (K2), ``*_varvote_softnms_official.py`` (K3) and
``*_softnms_official.py`` (K4) reuse this checkpoint.
"""

from detectron2.config import LazyCall as L

from d2_boxunc.modeling.box_regression import Box2BoxTransformXYXY
from d2_boxunc.modeling.meta_arch import BoxUncRCNN

from ..common.models.kl_box_predictor import box_predictor as _kl_box_predictor
from .kl_faster_rcnn_R_50_FPN_2x_baseline_official import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.roi_heads.box_predictor = _kl_box_predictor
model.roi_heads.box_predictor.update(sigma_t=0.01, vote_iou_thresh=0.01, prune_thresh=0.001)
model._target_ = BoxUncRCNN  # rescales pred_boxes_std with the boxes
model.proposal_generator.box2box_transform = L(Box2BoxTransformXYXY)(
    weights=(1.0, 1.0, 1.0, 1.0), clamp=1000.0 / 16
)
train.init_checkpoint = (
    "https://dl.fbaipublicfiles.com/detectron/35857389/12_2017_baselines/"
    "e2e_faster_rcnn_R-50-FPN_2x.yaml.01_37_22.KSeq0b5q/output/train/"
    "coco_2014_train%3Acoco_2014_valminusminival/generalized_rcnn/model_final.pkl"
)
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_official"
