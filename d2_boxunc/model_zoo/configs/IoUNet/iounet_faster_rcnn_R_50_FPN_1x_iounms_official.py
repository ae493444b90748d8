"""I1b official (eval-only of I1 official): IoU-guided NMS keyed on the predicted IoU, no
refinement, each kept box with its cluster's cls score. Paper 37.6; OpenMMLab-IoUNet 38.7.

Deviations from the official recipe: those of I1 official (its checkpoint).
"""

from .iounet_faster_rcnn_R_50_FPN_1x_official import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.roi_heads.refine = False
model.roi_heads.final_score = "cls"
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_iounms_official"
