"""G7d: the DIoU-loss row (giou_faster_rcnn_R_50_FPN_1x_diou.py) evaluated with DIoU-NMS
instead of NMS in the Fast R-CNN post-processing, at the same threshold (0.5).

DIoU-NMS suppresses a lower-scored box when IoU - rho^2 / c^2 > threshold (Zheng et al.,
"Distance-IoU Loss: Faster and Better Learning for Bounding Box Regression", AAAI 2020, Eq. 10;
https://github.com/Zzh-tju/DIoU), the test-time half of the paper's "DIoU loss + DIoU-NMS" rows.
Training is G7's, unchanged: a G7 checkpoint evaluates under this config (``--eval-only``). The
RPN keeps detectron2's NMS (the paper changes the final NMS only). Docs: docs/nms.md#diou-nms.
"""

from .giou_faster_rcnn_R_50_FPN_1x_diou import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads.box_predictor.test_nms_type = "diou"
train.output_dir = "./output/giou_faster_rcnn_R_50_FPN_1x_diou_nms"
