"""K6: Mask R-CNN R50-FPN 2x with KL-Loss, variance voting and soft-NMS (the mask head runs on
the voted boxes).  Paper: +1.8 box AP and +6.2 AP90 over its baseline (abstract).

Deviations from the official recipe (``configs/e2e_mask_rcnn_R-50-FPN_2x_log.yaml``):
- initial weights: ImageNet (MSRA R-50); the official training starts from an undocumented local
  COCO checkpoint, ``detectron-outs/mask-fpn-r50-faster.pkl``;
- scale: multi-scale training, short side 640-800 (official ``TRAIN.SCALES (800,)``);
- warm-up: 1000 iterations from 0.001 x lr (official: 500 from 1/3);
- pooling: ROIAlignV2, sampling ratio 0 (official: RoIAlign, sampling ratio 2, no half-pixel
  shift);
- RPN: detectron2's XYWH coder with L1 loss (official: corner (XYXY) deltas and smooth-L1 beta
  1/9);
- no "+1" in box sizes, detectron2's pixel mean (no config reproduces these);
- mask pooler: ROIAlignV2, sampling 0 (official: RoIAlign, sampling ratio 2);
- test: sigma_t 0.02, voters with IoU > 0 (official: 0.01 and IoU > 0.01).
The training recipe is detectron2's default, kept so that every row of the comparison shares it;
``kl_mask_rcnn_R_50_FPN_2x_varvote_softnms_official.py`` reproduces the official recipe.
"""

from d2_boxunc.modeling.meta_arch import BoxUncRCNN

from ..common.models.kl_box_predictor import box_predictor as _kl_box_predictor
from .kl_mask_rcnn_R_50_FPN_2x_baseline import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor = _kl_box_predictor
model._target_ = BoxUncRCNN  # rescales pred_boxes_std with the boxes
model.roi_heads.box_predictor.test_var_voting = True
model.roi_heads.box_predictor.test_nms_method = "soft"
train.output_dir = "./output/kl_mask_rcnn_R_50_FPN_2x_varvote_softnms"
