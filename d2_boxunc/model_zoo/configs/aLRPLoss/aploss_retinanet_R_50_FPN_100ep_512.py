"""A0: RetinaNet R50-FPN trained with AP Loss (interpolated AP ranking) + smooth-L1 (beta 1).

Same recipe as A1 but lr 0.002; smooth-L1 on the (10, 10, 5, 5)-normalised deltas averaged over
the 4 |P| coordinates, weight 1. Reference (mmdet port): 35.4 AP minival / 35.7 test-dev.
"""

from .alrp_retinanet_R_50_FPN_100ep_512 import dataloader, lr_multiplier, model, optimizer, train

model.cls_loss_type = "ap"
model.smooth_l1_beta = 1.0
optimizer.lr = 0.002
train.output_dir = "./output/aploss_retinanet_R_50_FPN_100ep_512"
