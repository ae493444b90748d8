"""G3: G2 plus GIoU loss in the RPN (weight 1, GIoU repo's per-image sampled-anchor normaliser).

The GIoU repo's later ``e2e_faster_rcnn_R-50-FPN_rpn_giou_1x`` setting (not in the paper).

Deviations from the official recipe (https://github.com/generalized-iou/Detectron.pytorch,
``configs/baselines/e2e_faster_rcnn_R-50-FPN_rpn_giou_1x.yaml``):
- scale: multi-scale training, short side 640-800 (official ``TRAIN.SCALES (800,)``);
- warm-up: 1000 iterations from 0.001 x lr (official: 500 from 1/3);
- pooling: ROIAlignV2, sampling ratio 0 (official: RoIAlign, sampling ratio 2, no half-pixel
  shift);
- no "+1" in box sizes, detectron2's pixel mean (no config reproduces these).
Initial weights (MSRA's caffe R-50) and the box-loss settings are the official ones. The training
recipe is detectron2's default, kept so that every row of the comparison shares it;
``giou_faster_rcnn_R_50_FPN_1x_rpn_giou_official.py`` reproduces the official recipe.
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
