"""I0: Faster R-CNN R50-FPN 1x, detectron2 defaults (ROIAlignV2), IoU-Net's baseline.

Paper 36.4 box AP (its FPN baseline); OpenMMLab-IoUNet retrain 37.6; detectron2 zoo 37.9.
"""

from ..Baselines.faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_baseline"
