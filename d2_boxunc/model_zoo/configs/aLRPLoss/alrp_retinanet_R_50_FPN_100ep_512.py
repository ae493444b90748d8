"""A1: RetinaNet R50-FPN trained with aLRP Loss (GIoU localisation error) and self-balance.

512 x 512 SSD-style training, 100 epochs at batch 32 (lr 0.008, x0.1 at epochs 60 and 80),
delta = 1, w_SB starts at 50 and is updated once per epoch. Reference (the official code's mmdet
port, https://github.com/kemaloksuz/aLRPLoss): 39.0 AP minival / 39.5 test-dev; standalone 38.9.

Deviations from the official recipe (https://github.com/kemaloksuz/aLRPLoss,
``configs/alrp_loss/alrp_loss_retinanet_r50_fpn_100e_coco500.py``):
- initial weights: MSRA's caffe R-50 (detectron2's ``R-50.pkl``: BGR, stride in the 1x1
  convolution) where the official code loads torchvision's ``resnet50``; detectron2's default
  ImageNet weights, which detectron2 reports as slightly better than torchvision's for detection;
  the twin ``alrp_retinanet_R_50_FPN_100ep_512_official.py`` loads torchvision's;
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

train.max_iter, lr_multiplier = _epoch_schedule(100, (60, 80), total_batch=32)
train.output_dir = "./output/alrp_retinanet_R_50_FPN_100ep_512"
