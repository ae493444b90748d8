"""I1: IoU-Net on Faster R-CNN R50-FPN 1x: PrRoIPool (both branches), IoU head trained on 1000
jittered RoIs per image with smooth-L1 on [-1, 1] targets (weight 5), IoU-guided NMS keyed on the
predicted IoU, refinement with lambda 0.5, final score cls x IoU.

Paper 38.1 box AP; OpenMMLab-IoUNet 39.3. Eval-only rows of this checkpoint: ``*_nohead.py`` (I1a),
``*_iounms.py`` (I1b).

Deviations from the official recipe (there is no official IoU-Net training code; the reference is
OpenMMLab-IoUNet, ``assets/faster_rcnn_iou_r50_fpn_1x_coco.py``):
- scale: multi-scale training, short side 640-800 (reference: single scale 800 / 1333);
- warm-up: 1000 iterations from 0.001 x lr (reference: 500 from 0.001);
- initial weights: MSRA's caffe R-50, BGR, stride in the 1x1 convolution (reference: torchvision's
  R-50 with ``norm_eval`` BN);
- pooling: PrRoIPool with ``aligned=True`` (coordinates shifted by -0.5 px, the geometry of
  ROIAlignV2) in both branches; the official PrRoIPool op, which the reference uses, has no offset
  (``aligned=False``);
- batch 16 at lr 0.02 (reference: 2 GPUs x 2 images at lr 0.005, the same 12 epochs).
Kept: detectron2's recipe, shared by every row of the comparison (``aligned=True`` matches the
baseline's ROIAlignV2 sampling geometry); ``iounet_faster_rcnn_R_50_FPN_1x_official.py`` reproduces
the reference recipe.
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
