"""Instant test of K3 official (``kl_faster_rcnn_R_50_FPN_2x_varvote_softnms_official.py``): the
official recipe's KL-Loss Faster R-CNN (corner-delta RPN, RoIAlign sampling 2, sigma_t 0.01) at
short side 160 for 2 iterations on the synthetic set (configs/common/instant.py)."""

from ..common.instant import make_instant as _make_instant
from ..KLLoss.kl_faster_rcnn_R_50_FPN_2x_varvote_softnms_official import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/kl_faster_rcnn_R_50_FPN_official_instant_test"
