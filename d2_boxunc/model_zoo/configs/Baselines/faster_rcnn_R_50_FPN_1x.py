"""Faster R-CNN R50-FPN, 1x (90k iterations at 16 images): the baseline every paper starts from.

detectron2 model zoo: 37.9 box AP on COCO val2017.
"""

from detectron2.model_zoo import get_config

from ..common.data.coco_detection import dataloader
from ..common.models.faster_rcnn_fpn import model

train = get_config("common/train.py").train
optimizer = get_config("common/optim.py").SGD
lr_multiplier = get_config("common/coco_schedule.py").lr_multiplier_1x

model.backbone.bottom_up.freeze_at = 2
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
train.max_iter = 90000
train.output_dir = "./output/faster_rcnn_R_50_FPN_1x"
