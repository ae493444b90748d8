"""A2: A1 with ATSS assignment (top-9 per level, mean+std IoU threshold, centre inside the GT),
1 ratio x 2 scales = 2 anchors per location, steps at epochs 75/95.
Reference (mmdet port): 41.0 AP minival / 41.3 test-dev; standalone 40.2.

Deviations from the official recipe (https://github.com/kemaloksuz/aLRPLoss,
``configs/alrp_loss/alrp_loss_retinanet_r50_fpn_ATSS_100e_coco500.py``):
- initial weights: MSRA's caffe R-50 (detectron2's ``R-50.pkl``: BGR, stride in the 1x1
  convolution) where the official code loads torchvision's ``resnet50``; detectron2's default
  ImageNet weights, which detectron2 reports as slightly better than torchvision's for detection;
  the twin ``alrp_retinanet_R_50_FPN_100ep_512_atss_official.py`` loads torchvision's;
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

_use_backbone(model, train, dataloader, "R_50")
_use_atss(model, scales_per_octave=2)
_set_scale(dataloader, model, 512)
train.max_iter, lr_multiplier = _epoch_schedule(100, (75, 95), total_batch=32)
train.output_dir = "./output/alrp_retinanet_R_50_FPN_100ep_512_atss"
