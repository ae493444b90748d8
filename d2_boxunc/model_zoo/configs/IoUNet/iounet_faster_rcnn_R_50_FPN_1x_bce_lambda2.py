"""I2a (eval-only of I2): refinement step lambda 2.0.  OpenMMLab-IoUNet 39.7.
With BCE the IoU gradient carries a p(1-p) <= 1/4 factor, which is why a larger lambda helps.

Deviations from the official recipe: those of I2 (its checkpoint: multi-scale training,
1000-iteration warm-up, MSRA R-50, PrRoIPool ``aligned=True``); the twin
``iounet_faster_rcnn_R_50_FPN_1x_bce_lambda2_official.py`` follows OpenMMLab-IoUNet's recipe.
"""

from .iounet_faster_rcnn_R_50_FPN_1x_bce import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.refine_lambda = 2.0
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_bce_lambda2"
