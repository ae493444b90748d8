"""G1: Faster R-CNN R50-FPN 1x, IoU loss (1 - IoU) in the Fast R-CNN head, weight 10; RPN smooth-L1."""

from d2_boxunc.modeling.roi_heads import IoULossFastRCNNOutputLayers

from .giou_faster_rcnn_R_50_FPN_1x_sl1 import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.update(
    _target_=IoULossFastRCNNOutputLayers,
    box_reg_loss_type="iou",
    iou_loss_weight=10.0,
    iou_loss_eps=1e-7,
)
train.output_dir = "./output/giou_faster_rcnn_R_50_FPN_1x_iou"
