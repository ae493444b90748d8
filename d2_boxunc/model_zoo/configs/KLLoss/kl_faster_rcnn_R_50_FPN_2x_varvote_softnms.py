"""K3 (eval-only of K1): variance voting + Gaussian soft-NMS (sigma 0.5, prune 0.001), the full
KL-Loss inference.  Paper 39.2 box AP (official README 39.2); KL-Loss-pytorch 40.2.

    train_net.py --config-file configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x_varvote_softnms.py \\
        --eval-only train.init_checkpoint=output/kl_faster_rcnn_R_50_FPN_2x/model_final.pth

Deviations from the official recipe: those of K1 (its checkpoint), and at test time sigma_t 0.02
with voters of IoU > 0 (KL-Loss-pytorch) where the official code uses 0.01 and IoU > 0.01. The twin
``kl_faster_rcnn_R_50_FPN_2x_varvote_softnms_official.py`` evaluates K1 official.
"""

from .kl_faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.test_var_voting = True
model.roi_heads.box_predictor.test_nms_method = "soft"
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_varvote_softnms"
