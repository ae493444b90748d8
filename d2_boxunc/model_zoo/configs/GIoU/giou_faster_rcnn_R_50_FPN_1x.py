"""G2: Faster R-CNN R50-FPN 1x, GIoU loss (1 - GIoU) in the Fast R-CNN head, weight 10; RPN smooth-L1.

Same setting as detectron2's built-in ``box_reg_loss_type="giou"`` with ``loss_box_reg`` weight 10,
but with our loss (re-orders inverted boxes instead of asserting, clamp formulation).
"""

from .giou_faster_rcnn_R_50_FPN_1x_iou import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.box_reg_loss_type = "giou"
train.output_dir = "./output/giou_faster_rcnn_R_50_FPN_1x"
