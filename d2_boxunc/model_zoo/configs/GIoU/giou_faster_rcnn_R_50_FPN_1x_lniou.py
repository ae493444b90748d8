"""G6: Faster R-CNN R50-FPN 1x, -ln IoU loss (UnitBox style; our addition) in the Fast R-CNN head.

Weight 10 like the other IoU-type rows; it is a starting point to tune, since -ln IoU is larger
than 1 - IoU (and steeper) for poorly overlapping boxes.

Deviations from the official recipe: not an official row (our addition); it shares G0's detectron2
recipe (multi-scale training, 1000-iteration warm-up from 0.001, ROIAlignV2) where the official
GIoU code trains single-scale 800 with a 500-iteration warm-up from 1/3 and RoIAlign sampling ratio
2; apply ``configs/common/official.py: detectron_recipe`` for that recipe.
"""

from .giou_faster_rcnn_R_50_FPN_1x_iou import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.box_reg_loss_type = "ln_iou"
train.output_dir = "./output/giou_faster_rcnn_R_50_FPN_1x_lniou"
