"""K1: Faster R-CNN R50-FPN 2x trained with KL-Loss; test with plain hard NMS.

alpha-layer init std 1e-4, smooth-L1 beta 1 inside the loss (paper / official KL).
Paper 38.5 box AP; KL-Loss-pytorch 39.2. The eval-only configs ``*_varvote.py`` (K2),
``*_varvote_softnms.py`` (K3) and ``*_softnms.py`` (K4) reuse this checkpoint.

Deviations from the official recipe (https://github.com/ethanhe42/KL-Loss,
``configs/e2e_faster_rcnn_R-50-FPN_2x.yaml``):
- initial weights: ImageNet (MSRA R-50) and one 2x schedule; the official training starts from
  Detectron's COCO-trained Faster R-CNN 2x (``TRAIN.WEIGHTS``), modelled by K7;
- scale: multi-scale training, short side 640-800 (official ``TRAIN.SCALES (800,)``);
- warm-up: 1000 iterations from 0.001 x lr (official: 500 from 1/3);
- pooling: ROIAlignV2, sampling ratio 0 (official: RoIAlign, sampling ratio 2, no half-pixel
  shift);
- RPN: detectron2's XYWH coder with L1 loss (official: corner (XYXY) deltas, since ``XYXY: True``
  switches Detectron's coder everywhere, and smooth-L1 beta 1/9);
- no "+1" in box sizes, detectron2's pixel mean (no config reproduces these);
- test-time voting (K2, K3): sigma_t 0.02 and voters with IoU > 0, KL-Loss-pytorch's settings
  (official: ``STD.IOU_SIGMA`` 0.01, voters with IoU > 0.01); sweep
  ``configs/sweeps/kl_sigma_t.yaml``.
The training recipe is detectron2's default, kept so that every row of the comparison shares it,
and ImageNet initialisation makes K0 vs K1 a like-for-like comparison;
``kl_faster_rcnn_R_50_FPN_2x_official.py`` reproduces the official recipe.
"""

from d2_boxunc.modeling.meta_arch import BoxUncRCNN

from ..Baselines.faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train
from ..common.models.kl_box_predictor import box_predictor as _kl_box_predictor

model.roi_heads.box_predictor = _kl_box_predictor
model._target_ = BoxUncRCNN  # rescales pred_boxes_std with the boxes
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x"
