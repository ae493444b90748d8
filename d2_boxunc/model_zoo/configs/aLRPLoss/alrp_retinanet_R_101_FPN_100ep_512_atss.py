"""A3: A2 with ResNet-101. Reference (mmdet port): 42.2 AP minival / 42.8 test-dev.

Deviations from the official recipe (https://github.com/kemaloksuz/aLRPLoss,
``configs/alrp_loss/alrp_loss_retinanet_r101_fpn_ATSS_100e_coco500.py``):
- initial weights: MSRA's caffe R-101 (detectron2's ``R-101.pkl``: BGR, stride in the 1x1
  convolution) where the official code loads torchvision's ``resnet101``; detectron2's default
  ImageNet weights, which detectron2 reports as slightly better than torchvision's for detection;
  the twin ``alrp_retinanet_R_101_FPN_100ep_512_atss_official.py`` loads torchvision's;
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

_use_backbone(model, train, dataloader, "R_101")
_use_atss(model, scales_per_octave=2)
_set_scale(dataloader, model, 512)
train.max_iter, lr_multiplier = _epoch_schedule(100, (75, 95), total_batch=32)
train.output_dir = "./output/alrp_retinanet_R_101_FPN_100ep_512_atss"
