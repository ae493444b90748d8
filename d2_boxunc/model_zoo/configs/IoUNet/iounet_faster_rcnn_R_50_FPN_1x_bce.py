"""I2: I1 trained with the BCE IoU loss (OpenMMLab-IoUNet's improvement; soft IoU targets),
lambda 0.5.  OpenMMLab-IoUNet 39.6.

Deviations from the official recipe: those of I1 (its recipe: multi-scale training, 1000-iteration
warm-up, MSRA R-50, PrRoIPool ``aligned=True``); the twin
``iounet_faster_rcnn_R_50_FPN_1x_bce_official.py`` follows OpenMMLab-IoUNet's recipe.
"""

from .iounet_faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.iou_head.loss_type = "bce"
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_bce"
