"""G8: Faster R-CNN R50-FPN 1x, CIoU loss in the Fast R-CNN head, weight 10; RPN smooth-L1.

CIoU = DIoU + alpha * v, with v = 4 / pi^2 * (atan(w_gt / h_gt) - atan(w / h))^2 and the trade-off
alpha = v / ((1 - IoU) + v) held constant in the backward pass (Zheng et al., "Distance-IoU Loss",
AAAI 2020, arXiv:1911.08287). Our addition to the GIoU rows (not in the GIoU paper): G2 with only
the loss changed, computed by ``d2_boxunc.losses.iou_loss(mode="ciou")`` (equal to detectron2's
``ciou_loss`` on valid boxes up to O(eps / h); re-orders inverted boxes instead of asserting).

Weight 10, as G1/G2, so the row differs from G2 in the loss alone. The DIoU authors' Faster R-CNN
table (their Detectron-based repo) also holds one weight for IoU, GIoU, DIoU and CIoU (12 there);
override ``model.roi_heads.box_predictor.iou_loss_weight=12`` to match it.

Deviations from the official recipe: not an official row (our addition); it shares G0's detectron2
recipe (multi-scale training, 1000-iteration warm-up from 0.001, ROIAlignV2) where the official
GIoU code trains single-scale 800 with a 500-iteration warm-up from 1/3 and RoIAlign sampling ratio
2; apply ``configs/common/official.py: detectron_recipe`` for that recipe.
"""

from .giou_faster_rcnn_R_50_FPN_1x_iou import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.box_reg_loss_type = "ciou"
train.output_dir = "./output/giou_faster_rcnn_R_50_FPN_1x_ciou"
