"""Instant test of G2 (``giou_faster_rcnn_R_50_FPN_1x.py``): Faster R-CNN R50-FPN with the GIoU loss
at short side 160 for 2 iterations on the synthetic set (configs/common/instant.py)."""

from ..common.instant import make_instant as _make_instant
from ..GIoU.giou_faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/giou_faster_rcnn_R_50_FPN_instant_test"
