"""G0: Faster R-CNN R50-FPN 1x with Detectron's smooth-L1 box losses, the GIoU paper's baseline.

detectron2's default is L1 (beta 0); the GIoU repo (Detectron) uses smooth-L1 with beta 1 in the
Fast R-CNN head and 1/9 in the RPN, so this row sets those for parity. G1-G4 and G6 change only
the box losses of this config. d2 zoo (L1): 37.9 box AP.

Deviations from the official recipe (https://github.com/generalized-iou/Detectron.pytorch,
``configs/baselines/e2e_faster_rcnn_R-50-FPN_1x.yaml``):
- scale: multi-scale training, short side 640-800 (official ``TRAIN.SCALES (800,)``);
- warm-up: 1000 iterations from 0.001 x lr (official: 500 from 1/3);
- pooling: ROIAlignV2, sampling ratio 0 (official: RoIAlign, sampling ratio 2, no half-pixel
  shift);
- no "+1" in box sizes, detectron2's pixel mean (no config reproduces these).
Initial weights (MSRA's caffe R-50) and the box-loss settings are the official ones. The training
recipe is detectron2's default, kept so that every row of the comparison shares it;
``giou_faster_rcnn_R_50_FPN_1x_sl1_official.py`` reproduces the official recipe.
"""

from ..Baselines.faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.smooth_l1_beta = 1.0
model.proposal_generator.smooth_l1_beta = 1.0 / 9
train.output_dir = "./output/giou_faster_rcnn_R_50_FPN_1x_sl1"
