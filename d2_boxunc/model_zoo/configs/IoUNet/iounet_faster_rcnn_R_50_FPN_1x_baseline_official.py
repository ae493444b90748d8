"""I0 official: the Faster R-CNN R50-FPN 1x baseline in the recipe of OpenMMLab-IoUNet's retrained
baseline (its ``assets/faster_rcnn_r50_fpn_1x_coco.py``, 37.6 box AP; there is no official IoU-Net
training code): single-scale 800 / 1333 training, warm-up 500 iterations from 0.001 x lr,
torchvision's ImageNet R-50 (RGB input, ImageNet mean / std, stride in the 3x3 convolution),
RoIAlign ``aligned=True`` with sampling ratio 0 (= detectron2's ROIAlignV2), L1 box losses.

Needs ``./models/R-50-torchvision.pkl``: ``python -m d2_boxunc.tools.convert_weights --arch
resnet50 --input resnet50-0676ba61.pth --output models/R-50-torchvision.pkl`` (torchvision's
``ResNet50_Weights.IMAGENET1K_V1`` file, which mmdetection's ``torchvision://resnet50`` is).

Deviations from the official recipe: 16 images per batch at lr 0.02 for 90k iterations (steps 60k /
80k) where the reference trained 2 GPUs x 2 images at lr 0.005 for 12 epochs (steps at epochs 8 and
11): the same number of epochs with a linearly scaled lr; detectron2's FrozenBN (statistics and
affine frozen) where mmdetection's ``norm_eval=True`` trains the BN affine parameters; no "+1"-free
difference (mmdetection 2.x has none either).
"""

from ..common.official import mmdet_recipe as _mmdet_recipe
from .iounet_faster_rcnn_R_50_FPN_1x_baseline import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

_mmdet_recipe(dataloader, lr_multiplier, model, train, train.max_iter)
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_baseline_official"
