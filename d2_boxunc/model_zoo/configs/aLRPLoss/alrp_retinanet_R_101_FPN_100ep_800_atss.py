"""A5: ATSS aLRP RetinaNet R101 at 800 x 800, 3 scales per octave, batch 16 (4 GPUs x 4 images,
as the official README trains), lr 0.004, steps at epochs 60/80. Reference (mmdet port): 45.4 AP
minival / 45.9 test-dev.

Deviations from the official recipe (https://github.com/kemaloksuz/aLRPLoss,
``configs/alrp_loss/alrp_loss_retinanet_r101_fpn_ATSS_100e_coco800.py``):
- initial weights: MSRA's caffe R-101 (detectron2's ``R-101.pkl``: BGR, stride in the 1x1
  convolution) where the official code loads torchvision's ``resnet101``; detectron2's default
  ImageNet weights, which detectron2 reports as slightly better than torchvision's for detection;
  the twin ``alrp_retinanet_R_101_FPN_100ep_800_atss_official.py`` loads torchvision's;
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
_use_atss(model, scales_per_octave=3)
_set_scale(dataloader, model, 800)
dataloader.train.total_batch_size = 16  # 4 GPUs x 4 images: the official README trains on 4 GPUs
optimizer.lr = 0.004
train.max_iter, lr_multiplier = _epoch_schedule(100, (60, 80), total_batch=16)
train.output_dir = "./output/alrp_retinanet_R_101_FPN_100ep_800_atss"
