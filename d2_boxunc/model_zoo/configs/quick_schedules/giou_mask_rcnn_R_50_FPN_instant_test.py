"""Instant test of G5 (``giou_mask_rcnn_R_50_FPN_1x.py``): Mask R-CNN R50-FPN with the GIoU loss
in the Fast R-CNN head at short side 160 for 2 iterations on the synthetic set, boxes and masks
evaluated (configs/common/instant.py)."""

from ..common.instant import make_instant as _make_instant
from ..GIoU.giou_mask_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/giou_mask_rcnn_R_50_FPN_instant_test"
