"""K1b: KL-Loss with plain L1 inside the loss (beta 0) and alpha init std 1e-5: the setting of the
KL-Loss-pytorch reimplementation (https://github.com/cxliu0/KL-Loss-pytorch)."""

from .kl_faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.kl_smooth_l1_beta = 0.0
model.roi_heads.box_predictor.logvar_init_std = 1e-5
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_l1"
