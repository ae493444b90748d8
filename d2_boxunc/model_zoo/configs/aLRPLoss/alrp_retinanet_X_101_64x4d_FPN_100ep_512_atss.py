"""A4: A2 with ResNeXt-101 64x4d. Reference (mmdet port): 44.5 AP minival / 44.6 test-dev.

Needs an ImageNet checkpoint in detectron2 format: torchvision's resnext101_64x4d converted with
detectron2's tools/convert-torchvision-to-d2.py, at ./models/X-101-64x4d-torchvision.pkl.
"""

from ..common.alrp import dataloader, model, optimizer, train
from ..common.alrp import epoch_schedule as _epoch_schedule
from ..common.alrp import set_scale as _set_scale
from ..common.alrp import use_atss as _use_atss
from ..common.alrp import use_backbone as _use_backbone

_use_backbone(model, train, dataloader, "X_101_64x4d")
_use_atss(model, scales_per_octave=2)
_set_scale(dataloader, model, 512)
train.max_iter, lr_multiplier = _epoch_schedule(100, (75, 95), total_batch=32)
train.output_dir = "./output/alrp_retinanet_X_101_64x4d_FPN_100ep_512_atss"
