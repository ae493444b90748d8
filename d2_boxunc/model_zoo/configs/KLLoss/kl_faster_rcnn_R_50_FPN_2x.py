"""K1: Faster R-CNN R50-FPN 2x trained with KL-Loss; test with plain hard NMS.

alpha-layer init std 1e-4, smooth-L1 beta 1 inside the loss (paper / official KL).
Paper 38.5 box AP; KL-Loss-pytorch 39.2. The eval-only configs ``*_varvote.py`` (K2),
``*_varvote_softnms.py`` (K3) and ``*_softnms.py`` (K4) reuse this checkpoint.
"""

from d2_boxunc.modeling.meta_arch import BoxUncRCNN

from ..Baselines.faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train
from ..common.models.kl_box_predictor import box_predictor as _kl_box_predictor

model.roi_heads.box_predictor = _kl_box_predictor
model._target_ = BoxUncRCNN  # rescales pred_boxes_std with the boxes
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x"
