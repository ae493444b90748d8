"""A4: A2 with ResNeXt-101 64x4d. Reference (mmdet port): 44.5 AP minival / 44.6 test-dev.

Needs an ImageNet checkpoint in detectron2 format: torchvision's resnext101_64x4d converted with
detectron2's tools/convert-torchvision-to-d2.py, at ./models/X-101-64x4d-torchvision.pkl.

Deviations from the official recipe (https://github.com/kemaloksuz/aLRPLoss,
``configs/alrp_loss/alrp_loss_retinanet_x101_64x4d_fpn_ATSS_100e_coco500.py``):
- initial weights: torchvision's ImageNet ``resnext101_64x4d`` (``IMAGENET1K_V1``, a newer and
  stronger training recipe) where the official code loads ``open-mmlab://resnext101_64x4d``
  (``resnext101_64x4d-ee2c6f71.pth``); convert that file with the same command to the same path to
  reproduce the official start exactly;
- normalisation: detectron2's FrozenBN (statistics and affine parameters frozen) where
  mmdetection's ``norm_eval=True`` trains the BN affine parameters;
- augmentation: the photometric distortion's output is clipped to [0, 255] and rounded to uint8 and
  the uint8 image is resized by PIL's bilinear filter, where the reference keeps float32 and
  resizes with OpenCV (docs/atss_ssd.md).
Scales, schedule, warm-up (500 iterations from 0.001) and the SSD augmentation (crop IoU check over
every box, channel swap with p = 0.5) follow the official configs.
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
