"""I6 (Cascade R-CNN): IoU-Net on detectron2's Cascade R-CNN R50-FPN 1x (three class-agnostic
stages at IoU 0.5 / 0.6 / 0.7, box weights (10, 10, 5, 5) x 1 / 2 / 3): PrRoIPool in the box
stages and the IoU branch, I1's IoU head and jittered-RoI training, and I1's test settings applied
to the cascade's output (scores averaged over the stages, boxes of the last stage): IoU-guided NMS
keyed on the predicted IoU, refinement with lambda 0.5, score cls x IoU
(``d2_boxunc.modeling.roi_heads.IoUNetCascadeROIHeads``). Paper: its Cascade R-CNN rows (numbers
TBD). ``model.roi_heads.test_iou_head=False`` evaluates the same checkpoint as a plain cascade.

Deviations from the official recipe (the paper's Cascade R-CNN rows; no released code):
detectron2's recipe (short side 640-800, warm-up 1000 iterations from 0.001, MSRA R-50) as every I
row; PrRoIPool ``aligned=True`` (the official op has no offset); the IoU-head loss weight, jitter
sampler and test settings are OpenMMLab-IoUNet's (I1), as the paper gives none; the paper's own
cascade implementation details are not known, so detectron2's cascade is used as is.
"""

from detectron2.model_zoo import get_config

from d2_boxunc.modeling.roi_heads import IoUNetCascadeROIHeads

from ..common.data.coco_detection import dataloader
from ..common.models.iounet_heads import box_pooler as _box_pooler
from ..common.models.iounet_heads import iou_head as _iou_head
from ..common.models.iounet_heads import iou_pooler as _iou_pooler
from ..common.models.iounet_heads import iou_roi_generator as _iou_roi_generator
from ..common.models.iounet_heads import test_settings as _test_settings

model = get_config("common/models/cascade_rcnn.py").model
model.roi_heads.update(mask_in_features=None, mask_pooler=None, mask_head=None)
model.roi_heads._target_ = IoUNetCascadeROIHeads
model.roi_heads.box_pooler = _box_pooler
model.roi_heads.iou_pooler = _iou_pooler
model.roi_heads.iou_head = _iou_head
model.roi_heads.iou_roi_generator = _iou_roi_generator
model.roi_heads.update(_test_settings)
model.backbone.bottom_up.freeze_at = 2

train = get_config("common/train.py").train
optimizer = get_config("common/optim.py").SGD
lr_multiplier = get_config("common/coco_schedule.py").lr_multiplier_1x
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
train.max_iter = 90000
train.output_dir = "./output/iounet_cascade_rcnn_R_50_FPN_1x"
