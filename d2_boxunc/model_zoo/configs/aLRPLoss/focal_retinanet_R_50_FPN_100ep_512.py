"""Baseline for the aLRP rows (our addition): focal loss + smooth-L1 (beta 1), same anchors, data
and 100-epoch schedule as A1, lr 0.02 (detectron2's 0.01 at batch 16, scaled to 32).

Deviations from the official recipe: not an official row (our baseline); it shares A1's recipe and
its deviations (MSRA caffe R-50 with FrozenBN, uint8 clipping of the photometric distortion).
"""

from .alrp_retinanet_R_50_FPN_100ep_512 import dataloader, lr_multiplier, model, optimizer, train

model.cls_loss_type = "focal"
model.box_reg_loss_type = "smooth_l1"
model.smooth_l1_beta = 1.0
optimizer.lr = 0.02
train.output_dir = "./output/focal_retinanet_R_50_FPN_100ep_512"
