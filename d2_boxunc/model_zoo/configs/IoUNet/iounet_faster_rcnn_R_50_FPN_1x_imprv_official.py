"""I3 official (eval-only of I2 official): OpenMMLab-IoUNet's "improved" IoU-Net
(``assets/faster_rcnn_iou_r50_fpn_imprv_1x_coco.py``): BCE + lambda 2.0 + IoU-guided NMS keyed on
cls x IoU. OpenMMLab-IoUNet 40.0.

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
model.roi_heads.test_nms_key = "cls_x_iou"
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_imprv_official"
