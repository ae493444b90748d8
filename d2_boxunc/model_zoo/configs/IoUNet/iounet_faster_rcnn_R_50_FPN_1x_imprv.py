"""I3 (eval-only of I2): OpenMMLab-IoUNet's "improved" IoU-Net: BCE + lambda 2.0 + IoU-guided NMS
keyed on cls x IoU.  OpenMMLab-IoUNet 40.0 (its ``faster_rcnn_iou_r50_fpn_imprv_1x_coco.py``;
https://github.com/thisisi3/OpenMMLab-IoUNet).

Deviations from the official recipe: those of I2 (its checkpoint: multi-scale training,
1000-iteration warm-up, MSRA R-50, PrRoIPool ``aligned=True``); the twin
``iounet_faster_rcnn_R_50_FPN_1x_imprv_official.py`` follows OpenMMLab-IoUNet's recipe.
"""

from .iounet_faster_rcnn_R_50_FPN_1x_bce import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.refine_lambda = 2.0
model.roi_heads.test_nms_key = "cls_x_iou"
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_imprv"
