"""K6 baseline: Mask R-CNN R50-FPN 2x, detectron2 defaults (d2 zoo 2x: 39.6 box / 35.3 mask AP)."""

from detectron2.model_zoo import get_config

from ..common.data.coco import dataloader

model = get_config("common/models/mask_rcnn_fpn.py").model
train = get_config("common/train.py").train
optimizer = get_config("common/optim.py").SGD
lr_multiplier = get_config("common/coco_schedule.py").lr_multiplier_2x

model.backbone.bottom_up.freeze_at = 2
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
train.max_iter = 180000
train.output_dir = "./output/kl_mask_rcnn_R_50_FPN_2x_baseline"
