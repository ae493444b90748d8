"""K6 baseline official: Mask R-CNN R50-FPN 2x in the Detectron recipe of the official KL-Loss
code's Mask R-CNN config (``configs/e2e_mask_rcnn_R-50-FPN_2x_log.yaml``): single-scale 800 /
1333, warm-up 500 iterations from 1/3, RoIAlign with sampling ratio 2 in the box head and in the
14x14 mask head (4-conv head, 28x28 masks, as detectron2's), smooth-L1 beta 1 / RPN 1/9, MSRA's
caffe R-50.

Deviations from the official recipe: no "+1" in box sizes, detectron2's pixel mean, 1000 RPN
proposals per image (as K0 official).
"""

from ..common.official import detectron_recipe as _detectron_recipe
from .kl_mask_rcnn_R_50_FPN_2x_baseline import dataloader, lr_multiplier, model, optimizer, train

_detectron_recipe(dataloader, lr_multiplier, model, train.max_iter)
train.output_dir = "./output/kl_mask_rcnn_R_50_FPN_2x_baseline_official"
