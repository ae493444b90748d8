"""K4 official (eval-only of K1 official): Gaussian soft-NMS without voting, with the
official test settings sigma_t 0.01, voters with IoU > 0.01, soft-NMS sigma 0.5, pruning 0.001.

    train_net.py --eval-only \\
        --config-file configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x_softnms_official.py \\
        train.init_checkpoint=output/kl_faster_rcnn_R_50_FPN_2x_official/model_final.pth

Deviations from the official recipe: those of K1 official (its checkpoint).
"""

from .kl_faster_rcnn_R_50_FPN_2x_official import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.test_var_voting = False
model.roi_heads.box_predictor.test_nms_method = "soft"
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_softnms_official"
