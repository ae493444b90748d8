"""K1b: KL-Loss with plain L1 inside the loss (beta 0) and alpha init std 1e-5: the setting of the
KL-Loss-pytorch reimplementation (https://github.com/cxliu0/KL-Loss-pytorch).

Deviations from the official recipe: a reimplementation setting, not the official one (the official
loss uses smooth-L1 beta 1 and init std 1e-4, as K1). KL-Loss-pytorch itself trains single-scale
800 / 1333 with a 500-iteration warm-up from 0.001, torchvision's R-50, RoIAlign with
``aligned=True`` and sampling ratio 0 (= ROIAlignV2) and corner deltas in the RPN; this row
otherwise keeps K1's detectron2 recipe (see K1's list) so that it differs from K1 in the loss
alone.
"""

from .kl_faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.kl_smooth_l1_beta = 0.0
model.roi_heads.box_predictor.logvar_init_std = 1e-5
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_l1"
