"""K6 baseline: Mask R-CNN R50-FPN 2x, detectron2 defaults (d2 zoo 2x: 39.6 box / 35.3 mask AP).

Deviations from the official recipe (the official code's ``e2e_mask_rcnn_R-50-FPN_2x_log.yaml`` run
without KL-Loss):
- scale: multi-scale training, short side 640-800 (official ``TRAIN.SCALES (800,)``);
- warm-up: 1000 iterations from 0.001 x lr (official: 500 from 1/3);
- pooling: ROIAlignV2, sampling ratio 0 (official: RoIAlign, sampling ratio 2, no half-pixel
  shift);
- RPN: detectron2's XYWH coder with L1 loss (official: smooth-L1 beta 1/9);
- no "+1" in box sizes, detectron2's pixel mean (no config reproduces these);
- mask pooler: ROIAlignV2, sampling 0 (official: RoIAlign, sampling ratio 2).
These are detectron2's defaults, kept so that every row of the comparison shares them;
``kl_mask_rcnn_R_50_FPN_2x_baseline_official.py`` reproduces the official recipe.
"""

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
