"""G6: Faster R-CNN R50-FPN 1x, -ln IoU loss (UnitBox style; our addition) in the Fast R-CNN head.

Weight 10 like the other IoU-type rows; it is a starting point to tune, since -ln IoU is larger
than 1 - IoU (and steeper) for poorly overlapping boxes.
"""

from .giou_faster_rcnn_R_50_FPN_1x_iou import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.box_reg_loss_type = "ln_iou"
train.output_dir = "./output/giou_faster_rcnn_R_50_FPN_1x_lniou"
