"""K0: plain Faster R-CNN R50-FPN 2x (XYWH coder, detectron2 defaults), KL-Loss's baseline.

Paper 37.9 box AP (= Detectron's 2x model); KL-Loss-pytorch reimplementation 38.4.

Deviations from the official recipe (Detectron's ``e2e_faster_rcnn_R-50-FPN_2x.yaml``):
- scale: multi-scale training, short side 640-800 (official ``TRAIN.SCALES (800,)``);
- warm-up: 1000 iterations from 0.001 x lr (official: 500 from 1/3);
- pooling: ROIAlignV2, sampling ratio 0 (official: RoIAlign, sampling ratio 2, no half-pixel
  shift);
- RPN: detectron2's XYWH coder with L1 loss (official: smooth-L1 beta 1/9);
- no "+1" in box sizes, detectron2's pixel mean (no config reproduces these);
- Fast R-CNN box loss: L1 (official: smooth-L1 beta 1).
These are detectron2's defaults, kept so that every row of the comparison shares them;
``kl_faster_rcnn_R_50_FPN_2x_baseline_official.py`` reproduces the official recipe.
"""

from ..Baselines.faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train

train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_baseline"
