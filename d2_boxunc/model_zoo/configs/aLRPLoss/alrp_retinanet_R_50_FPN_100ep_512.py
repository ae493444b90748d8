"""A1: RetinaNet R50-FPN trained with aLRP Loss (GIoU localisation error) and self-balance.

512 x 512 SSD-style training, 100 epochs at batch 32 (lr 0.008, x0.1 at epochs 60 and 80),
delta = 1, w_SB starts at 50 and is updated once per epoch. Reference (the official code's mmdet
port, https://github.com/kemaloksuz/aLRPLoss): 39.0 AP minival / 39.5 test-dev; standalone 38.9.
"""

from ..common.alrp import dataloader, model, optimizer, train
from ..common.alrp import epoch_schedule as _epoch_schedule

train.max_iter, lr_multiplier = _epoch_schedule(100, (60, 80), total_batch=32)
train.output_dir = "./output/alrp_retinanet_R_50_FPN_100ep_512"
