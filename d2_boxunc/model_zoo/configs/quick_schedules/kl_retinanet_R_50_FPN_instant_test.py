"""Instant test of R-K1 (``KLLoss/kl_retinanet_R_50_FPN_100ep_512.py``): RetinaNet R50-FPN with a
sigma branch trained by KL-Loss and variance voting, SSD augmentation at 160 x 160 for 2
iterations on the synthetic set (configs/common/instant.py)."""

from ..common.instant import make_instant as _make_instant
from ..KLLoss.kl_retinanet_R_50_FPN_100ep_512 import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/kl_retinanet_R_50_FPN_instant_test"
