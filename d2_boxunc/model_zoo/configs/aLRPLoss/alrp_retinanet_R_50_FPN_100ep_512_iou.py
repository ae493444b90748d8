"""A1a: A1 with the IoU localisation error eps = 2 (1 - IoU) instead of 1 - GIoU.

Deviations from the official recipe: those of A1 (MSRA caffe R-50 with FrozenBN where the official
code uses torchvision's R-50 with ``norm_eval`` BN; uint8 clipping of the photometric distortion);
no official config exists for A1a: the paper's IoU-based error ablation.
"""

from .alrp_retinanet_R_50_FPN_100ep_512 import dataloader, lr_multiplier, model, optimizer, train

model.loc_error = "iou"
train.output_dir = "./output/alrp_retinanet_R_50_FPN_100ep_512_iou"
