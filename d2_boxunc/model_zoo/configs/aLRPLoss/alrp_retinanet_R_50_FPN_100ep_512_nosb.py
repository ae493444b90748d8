"""A1b: A1 with a fixed localisation weight w_SB = 50 (self-balance ablation)."""

from .alrp_retinanet_R_50_FPN_100ep_512 import dataloader, lr_multiplier, model, optimizer, train

model.sb_update = False
model.sb_weight_init = 50.0
train.output_dir = "./output/alrp_retinanet_R_50_FPN_100ep_512_nosb"
