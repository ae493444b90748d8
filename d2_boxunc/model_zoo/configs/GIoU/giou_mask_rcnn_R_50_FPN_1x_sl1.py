"""G5 (smooth-L1): Mask R-CNN R50-FPN 1x with Detectron's smooth-L1 box losses (beta 1 / RPN 1/9).

d2 zoo (L1): 38.6 box / 35.2 mask AP.

Deviations from the official recipe (https://github.com/generalized-iou/Detectron.pytorch,
``configs/baselines/e2e_mask_rcnn_R-50-FPN_1x.yaml``):
- scale: multi-scale training, short side 640-800 (official ``TRAIN.SCALES (800,)``);
- warm-up: 1000 iterations from 0.001 x lr (official: 500 from 1/3);
- pooling: ROIAlignV2, sampling ratio 0 (official: RoIAlign, sampling ratio 2, no half-pixel
  shift); the same in the 14x14 mask head;
- no "+1" in box sizes, detectron2's pixel mean (no config reproduces these).
Initial weights (MSRA's caffe R-50) and the box-loss settings are the official ones. The training
recipe is detectron2's default, kept so that every row of the comparison shares it;
``giou_mask_rcnn_R_50_FPN_1x_sl1_official.py`` reproduces the official recipe.
"""

from detectron2.model_zoo import get_config

from ..common.data.coco import dataloader

model = get_config("common/models/mask_rcnn_fpn.py").model
train = get_config("common/train.py").train
optimizer = get_config("common/optim.py").SGD
lr_multiplier = get_config("common/coco_schedule.py").lr_multiplier_1x

model.backbone.bottom_up.freeze_at = 2
model.roi_heads.box_predictor.smooth_l1_beta = 1.0
model.proposal_generator.smooth_l1_beta = 1.0 / 9
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
train.max_iter = 90000
train.output_dir = "./output/giou_mask_rcnn_R_50_FPN_1x_sl1"
