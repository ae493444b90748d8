"""G5 (smooth-L1) official: Mask R-CNN R50-FPN 1x with smooth-L1 box losses in the recipe of the
official GIoU code (https://github.com/generalized-iou/Detectron.pytorch,
``configs/baselines/e2e_mask_rcnn_R-50-FPN_1x.yaml``): single-scale 800 / 1333 training, warm-up
500 iterations from 1/3 of the lr, RoIAlign with sampling ratio 2 (no half-pixel shift) in the
box head and in the 14x14 mask head, smooth-L1 beta 1 (Fast R-CNN head) and 1/9 (RPN) where
smooth-L1 is used, MSRA's caffe R-50 (``resnet50_caffe.pth`` there, detectron2's ``R-50.pkl``
here).

Deviations from the official recipe: boxes without Detectron's "+1" in widths and heights
(detectron2's convention); detectron2's pixel mean; the RPN keeps 1000 proposals per image in
training where Detectron.pytorch keeps 2000 per two-image GPU batch.
"""

from ..common.official import detectron_recipe as _detectron_recipe
from .giou_mask_rcnn_R_50_FPN_1x_sl1 import dataloader, lr_multiplier, model, optimizer, train

_detectron_recipe(dataloader, lr_multiplier, model, train.max_iter)
train.output_dir = "./output/giou_mask_rcnn_R_50_FPN_1x_sl1_official"
