"""I1b (eval-only of I1): + IoU-guided NMS (key = predicted IoU), no refinement; each kept box
keeps its cluster's cls score (OpenMMLab-IoUNet without refinement).  Paper 37.6;
OpenMMLab-IoUNet 38.7."""

from .iounet_faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.refine = False
model.roi_heads.final_score = "cls"
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_iounms"
