"""Instant test of A7 (``alrp_faster_rcnn_R_50_FPN_100ep_512.py``): aLRP Loss Faster R-CNN
R50-FPN (aLRP in the RPN and the R-CNN head, no sampling) with the SSD augmentation at 160 x 160
for 2 iterations on the synthetic set (configs/common/instant.py)."""

from ..aLRPLoss.alrp_faster_rcnn_R_50_FPN_100ep_512 import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)
from ..common.instant import make_instant as _make_instant

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/alrp_faster_rcnn_R_50_FPN_instant_test"
