"""A1b: A1 with a fixed localisation weight w_SB = 50 (self-balance ablation).

Deviations from the official recipe: those of A1 (MSRA caffe R-50 with FrozenBN where the official
code uses torchvision's R-50 with ``norm_eval`` BN; uint8 clipping of the photometric distortion);
no official config exists for A1b: the self-balance ablation.
"""

from .alrp_retinanet_R_50_FPN_100ep_512 import dataloader, lr_multiplier, model, optimizer, train

model.sb_update = False
model.sb_weight_init = 50.0
train.output_dir = "./output/alrp_retinanet_R_50_FPN_100ep_512_nosb"
