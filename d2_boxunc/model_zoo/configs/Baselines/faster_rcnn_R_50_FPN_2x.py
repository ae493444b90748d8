"""Faster R-CNN R50-FPN, 2x (180k iterations at 16 images, steps at 120k/160k): KL-Loss's baseline."""

from detectron2.model_zoo import get_config

from .faster_rcnn_R_50_FPN_1x import dataloader, model, optimizer, train

lr_multiplier = get_config("common/coco_schedule.py").lr_multiplier_2x
train.max_iter = 180000
train.output_dir = "./output/faster_rcnn_R_50_FPN_2x"
