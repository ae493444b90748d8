"""I5 official: I1 official with 50 jittered RoIs per IoU bin per GT (at most 1000 per image) and
IoU loss weight 10 (OpenMMLab-IoUNet's README ablation). OpenMMLab-IoUNet 38.9.

Deviations from the official recipe: those of I1 official.
"""

from .iounet_faster_rcnn_R_50_FPN_1x_official import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.roi_heads.iou_roi_generator.sampler = "per_iou"
model.roi_heads.iou_roi_generator.per_iou = 50
model.roi_heads.iou_head.loss_weight = 10.0
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_perioulw10_official"
