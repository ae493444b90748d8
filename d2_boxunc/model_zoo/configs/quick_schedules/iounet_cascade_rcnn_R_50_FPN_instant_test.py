"""Instant test of I6 (``iounet_cascade_rcnn_R_50_FPN_1x.py``): IoU-Net on Cascade R-CNN R50-FPN
(three stages with PrRoIPool, IoU head, IoU-guided NMS, refinement) at short side 160 for 2
iterations on the synthetic set (configs/common/instant.py)."""

from ..common.instant import make_instant as _make_instant
from ..IoUNet.iounet_cascade_rcnn_R_50_FPN_1x import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/iounet_cascade_rcnn_R_50_FPN_instant_test"
