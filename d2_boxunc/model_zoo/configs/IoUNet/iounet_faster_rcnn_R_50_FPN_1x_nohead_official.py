"""I1a official (eval-only of I1 official): the IoU branch off at test time, plain NMS on the
cls score. Paper 37.0; OpenMMLab-IoUNet 37.8.

Deviations from the official recipe: those of I1 official (its checkpoint).
"""

from .iounet_faster_rcnn_R_50_FPN_1x_official import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.roi_heads.test_iou_head = False
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_nohead_official"
