"""I6: IoU-Net on Mask R-CNN R50-FPN 1x (paper's other detector): I1's IoU branch, IoU-guided NMS
and refinement; the mask head runs on the refined boxes.  Paper: TBD (Table, Mask R-CNN rows).

Deviations from the official recipe (the paper's Mask R-CNN rows; no released code):
- pooling: PrRoIPool ``aligned=True`` in the box and IoU branches (official op: no offset); the
  mask head keeps detectron2's ROIAlignV2;
- scale / schedule: detectron2's multi-scale 1x with a 1000-iteration warm-up; the paper's recipe
  (I4: single scale 800 / 1200, 160k iterations at lr 0.01) is not applied here;
- IoU-head loss weight, jitter sampler and test settings: OpenMMLab-IoUNet's (I1), as the paper
  gives none; the Cascade R-CNN and R-101 rows of the paper are not written.
"""

from detectron2.model_zoo import get_config

from d2_boxunc.modeling.roi_heads import IoUNetROIHeads

from ..common.data.coco import dataloader
from ..common.models.iounet_heads import box_pooler as _box_pooler
from ..common.models.iounet_heads import iou_head as _iou_head
from ..common.models.iounet_heads import iou_pooler as _iou_pooler
from ..common.models.iounet_heads import iou_roi_generator as _iou_roi_generator
from ..common.models.iounet_heads import test_settings as _test_settings

model = get_config("common/models/mask_rcnn_fpn.py").model
train = get_config("common/train.py").train
optimizer = get_config("common/optim.py").SGD
lr_multiplier = get_config("common/coco_schedule.py").lr_multiplier_1x

model.backbone.bottom_up.freeze_at = 2
model.roi_heads._target_ = IoUNetROIHeads
model.roi_heads.box_pooler = _box_pooler
model.roi_heads.iou_pooler = _iou_pooler
model.roi_heads.iou_head = _iou_head
model.roi_heads.iou_roi_generator = _iou_roi_generator
model.roi_heads.update(_test_settings)
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
train.max_iter = 90000
train.output_dir = "./output/iounet_mask_rcnn_R_50_FPN_1x"
