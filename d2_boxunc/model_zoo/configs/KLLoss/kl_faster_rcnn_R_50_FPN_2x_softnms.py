"""K4 (eval-only of K1): Gaussian soft-NMS without voting, the ablation separating the two."""

from .kl_faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.test_var_voting = False
model.roi_heads.box_predictor.test_nms_method = "soft"
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_softnms"
