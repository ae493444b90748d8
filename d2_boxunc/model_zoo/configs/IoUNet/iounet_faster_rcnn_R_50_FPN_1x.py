"""I1: IoU-Net on Faster R-CNN R50-FPN 1x: PrRoIPool (both branches), IoU head trained on 1000
jittered RoIs per image with smooth-L1 on [-1, 1] targets (weight 5), IoU-guided NMS keyed on the
predicted IoU, refinement with lambda 0.5, final score cls x IoU.

Paper 38.1 box AP; OpenMMLab-IoUNet 39.3. Eval-only rows of this checkpoint: ``*_nohead.py`` (I1a),
``*_iounms.py`` (I1b).
"""

from d2_boxunc.modeling.roi_heads import IoUNetROIHeads

from ..Baselines.faster_rcnn_R_50_FPN_1x import dataloader, lr_multiplier, model, optimizer, train
from ..common.models.iounet_heads import box_pooler as _box_pooler
from ..common.models.iounet_heads import iou_head as _iou_head
from ..common.models.iounet_heads import iou_pooler as _iou_pooler
from ..common.models.iounet_heads import iou_roi_generator as _iou_roi_generator
from ..common.models.iounet_heads import test_settings as _test_settings

model.roi_heads._target_ = IoUNetROIHeads
model.roi_heads.box_pooler = _box_pooler
model.roi_heads.iou_pooler = _iou_pooler
model.roi_heads.iou_head = _iou_head
model.roi_heads.iou_roi_generator = _iou_roi_generator
model.roi_heads.update(_test_settings)
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x"
