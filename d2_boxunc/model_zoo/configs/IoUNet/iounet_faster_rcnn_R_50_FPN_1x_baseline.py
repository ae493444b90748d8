"""I0: Faster R-CNN R50-FPN 1x, detectron2 defaults (ROIAlignV2), IoU-Net's baseline.

Paper 36.4 box AP (its FPN baseline); OpenMMLab-IoUNet retrain 37.6; detectron2 zoo 37.9.

Deviations from the official recipe (there is no official IoU-Net training code; the reference is
OpenMMLab-IoUNet, ``assets/faster_rcnn_r50_fpn_1x_coco.py``):
- scale: multi-scale training, short side 640-800 (reference: single scale 800 / 1333);
- warm-up: 1000 iterations from 0.001 x lr (reference: 500 from 0.001);
- initial weights: MSRA's caffe R-50, BGR, stride in the 1x1 convolution (reference: torchvision's
  R-50 with ``norm_eval`` BN);
- batch 16 at lr 0.02 (reference: 2 GPUs x 2 images at lr 0.005, the same 12 epochs).
Kept: detectron2's recipe, shared by every row of the comparison;
``iounet_faster_rcnn_R_50_FPN_1x_baseline_official.py`` reproduces the reference recipe.
"""

from ..Baselines.faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_baseline"
