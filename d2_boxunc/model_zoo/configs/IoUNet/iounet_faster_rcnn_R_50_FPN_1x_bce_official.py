"""I2 official: I1 official trained with the BCE IoU loss (OpenMMLab-IoUNet's
``assets/faster_rcnn_iou_r50_fpn_bce_1x_coco.py``), lambda 0.5. OpenMMLab-IoUNet 39.6.

Deviations from the official recipe: those of I1 official.
"""

from .iounet_faster_rcnn_R_50_FPN_1x_official import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.roi_heads.iou_head.loss_type = "bce"
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_bce_official"
