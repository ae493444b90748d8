"""Instant test of A0 (``aploss_retinanet_R_50_FPN_100ep_512.py``): AP Loss RetinaNet R50-FPN
(interpolated AP ranking + smooth-L1) with the SSD augmentation at 160 x 160 for 2 iterations on
the synthetic set (configs/common/instant.py)."""

from ..aLRPLoss.aploss_retinanet_R_50_FPN_100ep_512 import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from ..common.instant import make_instant as _make_instant

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/aploss_retinanet_R_50_FPN_instant_test"
