"""A3: A2 with ResNet-101. Reference (mmdet port): 42.2 AP minival / 42.8 test-dev."""

from ..common.alrp import dataloader, model, optimizer, train
from ..common.alrp import epoch_schedule as _epoch_schedule
from ..common.alrp import set_scale as _set_scale
from ..common.alrp import use_atss as _use_atss
from ..common.alrp import use_backbone as _use_backbone

_use_backbone(model, train, dataloader, "R_101")
_use_atss(model, scales_per_octave=2)
_set_scale(dataloader, model, 512)
train.max_iter, lr_multiplier = _epoch_schedule(100, (75, 95), total_batch=32)
train.output_dir = "./output/alrp_retinanet_R_101_FPN_100ep_512_atss"
