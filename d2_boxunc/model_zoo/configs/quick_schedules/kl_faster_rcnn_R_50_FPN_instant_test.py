"""Instant test of K3 (``kl_faster_rcnn_R_50_FPN_2x_varvote_softnms.py``): KL-Loss Faster R-CNN
R50-FPN trained with the KL loss, tested with variance voting and soft-NMS at short side 160 for
2 iterations on the synthetic set (configs/common/instant.py)."""

from ..common.instant import make_instant as _make_instant
from ..KLLoss.kl_faster_rcnn_R_50_FPN_2x_varvote_softnms import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

_make_instant(dataloader, model, train)
train.output_dir = "./output/quick_schedules/kl_faster_rcnn_R_50_FPN_instant_test"
