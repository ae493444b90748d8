"""K0x: Faster R-CNN 2x with the corner-delta (XYXY, x10) coder and smooth-L1 beta 1, no variance.

Isolates the coder change from the KL loss (not in the paper).

Deviations from the official recipe: not an official row (our control); it shares K0's detectron2
recipe (see K0's list), and keeps the RPN's XYWH coder.
"""

from detectron2.config import LazyCall as L

from d2_boxunc.modeling.box_regression import Box2BoxTransformXYXY

from ..Baselines.faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.box2box_transform = L(Box2BoxTransformXYXY)(
    weights=(10, 10, 10, 10), clamp=1000.0 / 16
)
model.roi_heads.box_predictor.smooth_l1_beta = 1.0
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_xyxy"
