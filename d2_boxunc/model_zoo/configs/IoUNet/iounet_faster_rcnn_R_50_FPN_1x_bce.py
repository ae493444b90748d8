"""I2: I1 trained with the BCE IoU loss (OpenMMLab-IoUNet's improvement; soft IoU targets),
lambda 0.5.  OpenMMLab-IoUNet 39.6."""

from .iounet_faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.iou_head.loss_type = "bce"
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_bce"
