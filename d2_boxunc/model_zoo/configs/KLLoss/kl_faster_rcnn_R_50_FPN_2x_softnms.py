"""K4 (eval-only of K1): Gaussian soft-NMS without voting, the ablation separating the two.

Deviations from the official recipe: those of K1 (its checkpoint), and at test time sigma_t 0.02
with voters of IoU > 0 (KL-Loss-pytorch) where the official code uses 0.01 and IoU > 0.01. The twin
``kl_faster_rcnn_R_50_FPN_2x_softnms_official.py`` evaluates K1 official.
"""

from .kl_faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.test_var_voting = False
model.roi_heads.box_predictor.test_nms_method = "soft"
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_softnms"
