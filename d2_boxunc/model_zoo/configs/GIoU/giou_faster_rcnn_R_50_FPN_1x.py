"""G2: Faster R-CNN R50-FPN 1x, GIoU loss (1 - GIoU) in the Fast R-CNN head, weight 10; RPN smooth-L1.

Same setting as detectron2's built-in ``box_reg_loss_type="giou"`` with ``loss_box_reg`` weight 10,
but with our loss (re-orders inverted boxes instead of asserting, clamp formulation).

Deviations from the official recipe (https://github.com/generalized-iou/Detectron.pytorch,
``configs/baselines/e2e_faster_rcnn_R-50-FPN_giou_1x.yaml``):
- scale: multi-scale training, short side 640-800 (official ``TRAIN.SCALES (800,)``);
- warm-up: 1000 iterations from 0.001 x lr (official: 500 from 1/3);
- pooling: ROIAlignV2, sampling ratio 0 (official: RoIAlign, sampling ratio 2, no half-pixel
  shift);
- no "+1" in box sizes, detectron2's pixel mean (no config reproduces these).
Initial weights (MSRA's caffe R-50) and the box-loss settings are the official ones. The training
recipe is detectron2's default, kept so that every row of the comparison shares it;
``giou_faster_rcnn_R_50_FPN_1x_official.py`` reproduces the official recipe.
"""

from .giou_faster_rcnn_R_50_FPN_1x_iou import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.box_reg_loss_type = "giou"
train.output_dir = "./output/giou_faster_rcnn_R_50_FPN_1x"
