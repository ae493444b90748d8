"""G0: Faster R-CNN R50-FPN 1x with Detectron's smooth-L1 box losses, the GIoU paper's baseline.

detectron2's default is L1 (beta 0); the GIoU repo (Detectron) uses smooth-L1 with beta 1 in the
Fast R-CNN head and 1/9 in the RPN, so this row sets those for parity. G1-G4 and G6 change only
the box losses of this config. d2 zoo (L1): 37.9 box AP.
"""

from ..Baselines.faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.smooth_l1_beta = 1.0
model.proposal_generator.smooth_l1_beta = 1.0 / 9
train.output_dir = "./output/giou_faster_rcnn_R_50_FPN_1x_sl1"
