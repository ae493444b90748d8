"""I1b (eval-only of I1): + IoU-guided NMS (key = predicted IoU), no refinement; each kept box
keeps its cluster's cls score (OpenMMLab-IoUNet without refinement).  Paper 37.6;
OpenMMLab-IoUNet 38.7.

Deviations from the official recipe: those of I1 (its checkpoint: multi-scale training,
1000-iteration warm-up, MSRA R-50, PrRoIPool ``aligned=True``); the twin
``iounet_faster_rcnn_R_50_FPN_1x_iounms_official.py`` follows OpenMMLab-IoUNet's recipe.
"""

from .iounet_faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.refine = False
model.roi_heads.final_score = "cls"
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_iounms"
