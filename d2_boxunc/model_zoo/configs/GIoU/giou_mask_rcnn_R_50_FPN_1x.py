"""G5 (GIoU): Mask R-CNN R50-FPN 1x, GIoU loss in the Fast R-CNN head (weight 10); RPN smooth-L1."""

from .giou_mask_rcnn_R_50_FPN_1x_iou import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.box_reg_loss_type = "giou"
train.output_dir = "./output/giou_mask_rcnn_R_50_FPN_1x"
