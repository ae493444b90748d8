"""A1a: A1 with the IoU localisation error eps = 2 (1 - IoU) instead of 1 - GIoU."""

from .alrp_retinanet_R_50_FPN_100ep_512 import dataloader, lr_multiplier, model, optimizer, train

model.loc_error = "iou"
train.output_dir = "./output/alrp_retinanet_R_50_FPN_100ep_512_iou"
