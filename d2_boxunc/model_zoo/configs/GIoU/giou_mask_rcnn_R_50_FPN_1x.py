"""G5 (GIoU): Mask R-CNN R50-FPN 1x, GIoU loss in the Fast R-CNN head (weight 10); RPN smooth-L1.

Deviations from the official recipe (https://github.com/generalized-iou/Detectron.pytorch,
``configs/baselines/e2e_mask_rcnn_R-50-FPN_giou_1x.yaml``):
- scale: multi-scale training, short side 640-800 (official ``TRAIN.SCALES (800,)``);
- warm-up: 1000 iterations from 0.001 x lr (official: 500 from 1/3);
- pooling: ROIAlignV2, sampling ratio 0 (official: RoIAlign, sampling ratio 2, no half-pixel
  shift); the same in the 14x14 mask head;
- no "+1" in box sizes, detectron2's pixel mean (no config reproduces these).
Initial weights (MSRA's caffe R-50) and the box-loss settings are the official ones. The training
recipe is detectron2's default, kept so that every row of the comparison shares it;
``giou_mask_rcnn_R_50_FPN_1x_official.py`` reproduces the official recipe.
"""

from .giou_mask_rcnn_R_50_FPN_1x_iou import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.box_reg_loss_type = "giou"
train.output_dir = "./output/giou_mask_rcnn_R_50_FPN_1x"
