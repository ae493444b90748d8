"""A0: RetinaNet R50-FPN trained with AP Loss (interpolated AP ranking) + smooth-L1 (beta 1).

Same recipe as A1 but lr 0.002; smooth-L1 on the (10, 10, 5, 5)-normalised deltas averaged over
the 4 |P| coordinates, weight 1. Reference (mmdet port): 35.4 AP minival / 35.7 test-dev.

Deviations from the official recipe (https://github.com/kemaloksuz/aLRPLoss,
``configs/alrp_loss/ap_loss_retinanet_r50_fpn_100e_coco500.py``):
- initial weights: MSRA's caffe R-50 (detectron2's ``R-50.pkl``: BGR, stride in the 1x1
  convolution) where the official code loads torchvision's ``resnet50``; detectron2's default
  ImageNet weights, which detectron2 reports as slightly better than torchvision's for detection;
  the twin ``aploss_retinanet_R_50_FPN_100ep_512_official.py`` loads torchvision's;
- normalisation: detectron2's FrozenBN (statistics and affine parameters frozen) where
  mmdetection's ``norm_eval=True`` trains the BN affine parameters;
- augmentation: the photometric distortion's output is clipped to [0, 255] and rounded to uint8 and
  the uint8 image is resized by PIL's bilinear filter, where the reference keeps float32 and
  resizes with OpenCV (docs/atss_ssd.md).
Scales, schedule, warm-up (500 iterations from 0.001) and the SSD augmentation (crop IoU check over
every box, channel swap with p = 0.5) follow the official configs.
"""

from .alrp_retinanet_R_50_FPN_100ep_512 import dataloader, lr_multiplier, model, optimizer, train

model.cls_loss_type = "ap"
model.smooth_l1_beta = 1.0
optimizer.lr = 0.002
train.output_dir = "./output/aploss_retinanet_R_50_FPN_100ep_512"
