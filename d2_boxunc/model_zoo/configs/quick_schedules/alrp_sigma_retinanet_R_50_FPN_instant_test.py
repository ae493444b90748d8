"""Instant test of C2 (``Composed/alrp_sigma_retinanet_R_50_FPN_100ep_512.py``): aLRP Loss
RetinaNet R50-FPN with the sigma branch and variance voting, SSD augmentation at 160 for 2
iterations on the synthetic set (configs/common/instant.py)."""

from ..common.instant import make_instant as _make_instant
from ..Composed.alrp_sigma_retinanet_R_50_FPN_100ep_512 import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/alrp_sigma_retinanet_R_50_FPN_instant_test"
