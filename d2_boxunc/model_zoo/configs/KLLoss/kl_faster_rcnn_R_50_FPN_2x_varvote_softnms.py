"""K3 (eval-only of K1): variance voting + Gaussian soft-NMS (sigma 0.5, prune 0.001), the full
KL-Loss inference.  Paper 39.2 box AP (official README 39.2); KL-Loss-pytorch 40.2.

    train_net.py --config-file configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x_varvote_softnms.py \\
        --eval-only train.init_checkpoint=output/kl_faster_rcnn_R_50_FPN_2x/model_final.pth
"""

from .kl_faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.test_var_voting = True
model.roi_heads.box_predictor.test_nms_method = "soft"
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_varvote_softnms"
