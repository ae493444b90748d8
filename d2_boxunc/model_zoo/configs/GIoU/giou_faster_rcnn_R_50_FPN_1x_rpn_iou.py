"""G4: G1 plus IoU loss in the RPN (weight 1, per-image sampled-anchor normaliser); post-paper.

Deviations from the official recipe: not an official row (a post-paper extension; the official code
has no IoU-in-RPN config); it shares G0's detectron2 recipe (multi-scale training, 1000-iteration
warm-up from 0.001, ROIAlignV2) where the official GIoU code trains single-scale 800 with a
500-iteration warm-up from 1/3 and RoIAlign sampling ratio 2; apply ``configs/common/official.py:
detectron_recipe`` for that recipe.
"""

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
