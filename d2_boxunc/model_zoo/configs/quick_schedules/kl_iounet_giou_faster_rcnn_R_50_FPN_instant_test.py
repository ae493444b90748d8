"""Instant test of C1 (``Composed/kl_iounet_giou_faster_rcnn_R_50_FPN_1x.py``): the composed
Faster R-CNN R50-FPN (GIoU box loss, KL sigma, IoU head; IoU-guided NMS, variance voting,
refinement) at short side 160 for 2 iterations on the synthetic set (configs/common/instant.py)."""

from ..common.instant import make_instant as _make_instant
from ..Composed.kl_iounet_giou_faster_rcnn_R_50_FPN_1x import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/kl_iounet_giou_faster_rcnn_R_50_FPN_instant_test"
