"""K0: plain Faster R-CNN R50-FPN 2x (XYWH coder, detectron2 defaults), KL-Loss's baseline.

Paper 37.9 box AP (= Detectron's 2x model); KL-Loss-pytorch reimplementation 38.4.
"""

from ..Baselines.faster_rcnn_R_50_FPN_2x import dataloader, lr_multiplier, model, optimizer, train

train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_baseline"
