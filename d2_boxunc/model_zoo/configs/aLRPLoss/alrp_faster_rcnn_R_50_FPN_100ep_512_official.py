"""A7 official: aLRP Loss Faster R-CNN R50-FPN 500 with the official code's ImageNet weights
(https://github.com/kemaloksuz/aLRPLoss,
``configs/alrp_loss/alrp_loss_faster_rcnn_r50_fpn_100e_coco500.py``:
``pretrained='torchvision://resnet50'``): torchvision's resnet50 converted to
``./models/R-50-torchvision.pkl`` (RGB input, ImageNet mean / std, stride in the 3x3
convolution). Everything else is A7's.

Write the weights once: ``python -m d2_boxunc.tools.convert_weights --arch resnet50 --input
resnet50.pth --output models/R-50-torchvision.pkl``.

Deviations from the official recipe: A7's (alrp_faster_rcnn_R_50_FPN_100ep_512.py) except the
initial weights.
"""

from ..common.alrp import use_backbone as _use_backbone
from .alrp_faster_rcnn_R_50_FPN_100ep_512 import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

_use_backbone(model, train, dataloader, "R_50_torchvision")
train.output_dir = "./output/alrp_faster_rcnn_R_50_FPN_100ep_512_official"
