"""G4: G1 plus IoU loss in the RPN (weight 1, per-image sampled-anchor normaliser); post-paper."""

from d2_boxunc.modeling.proposal_generator import IoULossRPN

from .giou_faster_rcnn_R_50_FPN_1x_iou import dataloader, lr_multiplier, model, optimizer, train

model.proposal_generator.update(
    _target_=IoULossRPN,
    box_reg_loss_type="iou",
    loss_weight={"loss_rpn_cls": 1.0, "loss_rpn_loc": 1.0},
    rpn_norm="actual",
    iou_loss_eps=1e-7,
)
train.output_dir = "./output/giou_faster_rcnn_R_50_FPN_1x_rpn_iou"
