"""Instant test of A0i (``iouaware_retinanet_R_50_FPN_100ep_512.py``): IoU-aware RetinaNet R50-FPN
(focal loss, IoU branch, score cls^0.5 x IoU^0.5) with the SSD augmentation at 160 x 160 for 2
iterations on the synthetic set (configs/common/instant.py)."""

from ..aLRPLoss.iouaware_retinanet_R_50_FPN_100ep_512 import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from ..common.instant import make_instant as _make_instant

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/iouaware_retinanet_R_50_FPN_instant_test"
