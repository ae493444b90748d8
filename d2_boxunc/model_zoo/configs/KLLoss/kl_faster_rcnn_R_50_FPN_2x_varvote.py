"""K2 (eval-only of K1): variance voting with hard NMS 0.5, sigma_t 0.02, voters = remaining
boxes with IoU > 0.  Paper 38.8 box AP; KL-Loss-pytorch 39.8.

    train_net.py --config-file configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x_varvote.py --eval-only \\
        train.init_checkpoint=output/kl_faster_rcnn_R_50_FPN_2x/model_final.pth

Deviations from the official recipe: those of K1 (its checkpoint), and at test time sigma_t 0.02
with voters of IoU > 0 (KL-Loss-pytorch) where the official code uses 0.01 and IoU > 0.01. The twin
``kl_faster_rcnn_R_50_FPN_2x_varvote_official.py`` evaluates K1 official.
"""

from .kl_faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.test_var_voting = True
model.roi_heads.box_predictor.test_nms_method = "hard"
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_varvote"
