"""A0 official: AP Loss RetinaNet R50-FPN 500 with the official code's ImageNet weights
(https://github.com/kemaloksuz/aLRPLoss,
``configs/alrp_loss/ap_loss_retinanet_r50_fpn_100e_coco500.py``:
``pretrained='torchvision://resnet50'``): torchvision's resnet50 converted to
``./models/R-50-torchvision.pkl`` (RGB input, ImageNet mean / std, stride in the 3x3
convolution). Everything else is A0's, which already follows the official recipe.

Write the weights once: ``python -m d2_boxunc.tools.convert_weights --arch resnet50 --input
resnet50.pth --output models/R-50-torchvision.pkl`` (the module docstring says where to get the
``.pth``).

Deviations from the official recipe: detectron2's FrozenBN (statistics and affine parameters
frozen) where mmdetection's ``norm_eval=True`` freezes the statistics but trains the BN affine
parameters; the photometric distortion's output is clipped to [0, 255] and rounded to uint8, and
uint8 images are resized by PIL's bilinear filter where the reference keeps float32 and resizes
with OpenCV (docs/atss_ssd.md).
"""

from ..common.alrp import use_backbone as _use_backbone
from .aploss_retinanet_R_50_FPN_100ep_512 import dataloader, lr_multiplier, model, optimizer, train

_use_backbone(model, train, dataloader, "R_50_torchvision")
train.output_dir = "./output/aploss_retinanet_R_50_FPN_100ep_512_official"
