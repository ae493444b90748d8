"""A5 official: aLRP Loss ATSS RetinaNet R101-FPN 800 with the official code's ImageNet weights
(https://github.com/kemaloksuz/aLRPLoss,
``configs/alrp_loss/alrp_loss_retinanet_r101_fpn_ATSS_100e_coco800.py``:
``pretrained='torchvision://resnet101'``): torchvision's resnet101 converted to
``./models/R-101-torchvision.pkl`` (RGB input, ImageNet mean / std, stride in the 3x3
convolution). Everything else is A5's, which already follows the official recipe.

Write the weights once: ``python -m d2_boxunc.tools.convert_weights --arch resnet101 --input
resnet101.pth --output models/R-101-torchvision.pkl`` (the module docstring says where to get the
``.pth``).

Deviations from the official recipe: detectron2's FrozenBN (statistics and affine parameters
frozen) where mmdetection's ``norm_eval=True`` freezes the statistics but trains the BN affine
parameters; the photometric distortion's output is clipped to [0, 255] and rounded to uint8, and
uint8 images are resized by PIL's bilinear filter where the reference keeps float32 and resizes
with OpenCV (docs/atss_ssd.md).
"""

from ..common.alrp import use_backbone as _use_backbone
from .alrp_retinanet_R_101_FPN_100ep_800_atss import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

_use_backbone(model, train, dataloader, "R_101_torchvision")
train.output_dir = "./output/alrp_retinanet_R_101_FPN_100ep_800_atss_official"
