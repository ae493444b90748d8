"""Instant test of A2 (``alrp_retinanet_R_50_FPN_100ep_512_atss.py``): aLRP Loss ATSS RetinaNet
R50-FPN with the SSD augmentation at short side 160 for 2 iterations on the synthetic set
(configs/common/instant.py)."""

from ..aLRPLoss.alrp_retinanet_R_50_FPN_100ep_512_atss import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from ..common.instant import make_instant as _make_instant

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/alrp_retinanet_R_50_FPN_atss_instant_test"
