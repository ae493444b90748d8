"""R-K1 eval-only: variance voting with Gaussian soft-NMS (sigma 0.5, pruning below 0.001) in
place of hard NMS, on R-K1's checkpoint (docs/retinanet_heads.md).

    train_net.py --config-file configs/KLLoss/kl_retinanet_R_50_FPN_100ep_512_varvote_softnms.py \\
        --eval-only train.init_checkpoint=output/kl_retinanet_R_50_FPN_100ep_512/model_final.pth

Deviations from the official recipe: those of R-CNN row K3's test settings (sigma_t 0.02, voters
with IoU > 0) and of R-K1's training (not an official row).
"""

from .kl_retinanet_R_50_FPN_100ep_512 import dataloader, lr_multiplier, model, optimizer, train

model.test_nms_method = "soft"
train.output_dir = "./output/kl_retinanet_R_50_FPN_100ep_512_varvote_softnms"
