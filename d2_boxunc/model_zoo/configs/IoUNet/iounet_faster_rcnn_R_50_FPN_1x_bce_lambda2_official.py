"""I2a official (eval-only of I2 official): refinement step lambda 2.0. OpenMMLab-IoUNet 39.7.

Deviations from the official recipe: those of I2 official (its checkpoint).
"""

from .iounet_faster_rcnn_R_50_FPN_1x_bce_official import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.roi_heads.refine_lambda = 2.0
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_bce_lambda2_official"
