"""I5: ablation of the jitter sampler and the loss weight: 50 RoIs per IoU bin per GT (at most
1000 per image) and IoU loss weight 10.  OpenMMLab-IoUNet 38.9 (vs 39.2 with weight 5).

Deviations from the official recipe: those of I1 (its recipe: multi-scale training, 1000-iteration
warm-up, MSRA R-50, PrRoIPool ``aligned=True``); the twin
``iounet_faster_rcnn_R_50_FPN_1x_perioulw10_official.py`` follows OpenMMLab-IoUNet's recipe.
"""

from .iounet_faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.iou_roi_generator.sampler = "per_iou"
model.roi_heads.iou_roi_generator.per_iou = 50
model.roi_heads.iou_head.loss_weight = 10.0
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_perioulw10"
