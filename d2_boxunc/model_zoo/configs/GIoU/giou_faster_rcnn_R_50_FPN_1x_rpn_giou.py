"""G3: G2 plus GIoU loss in the RPN (weight 1, GIoU repo's per-image sampled-anchor normaliser).

The GIoU repo's later ``e2e_faster_rcnn_R-50-FPN_rpn_giou_1x`` setting (not in the paper).
"""

from d2_boxunc.modeling.proposal_generator import IoULossRPN

from .giou_faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.proposal_generator.update(
    _target_=IoULossRPN,
    box_reg_loss_type="giou",
    loss_weight={"loss_rpn_cls": 1.0, "loss_rpn_loc": 1.0},
    rpn_norm="actual",
    iou_loss_eps=1e-7,
)
train.output_dir = "./output/giou_faster_rcnn_R_50_FPN_1x_rpn_giou"
