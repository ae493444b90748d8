"""I1 official: IoU-Net on Faster R-CNN R50-FPN 1x in the recipe behind the reference numbers
(OpenMMLab-IoUNet's ``assets/faster_rcnn_iou_r50_fpn_1x_coco.py``, 39.3 box AP; the paper, 38.1,
has no released training code, only its PrRoIPool op): I1's model and test settings with
PrRoIPool **without** the half-pixel offset in both branches (``aligned=False``: the official
op scales the box by the stride and nothing else), single-scale 800 / 1333 training, warm-up 500
iterations from 0.001 x lr, torchvision's ImageNet R-50 (``./models/R-50-torchvision.pkl``, see
I0 official for the conversion command).

Deviations from the official recipe: those of I0 official (batch 16 at lr 0.02 in detectron2's 1x
iterations instead of 4 images at lr 0.005 for 12 epochs; FrozenBN instead of ``norm_eval``).
Eval-only twins of this checkpoint: ``*_nohead_official.py`` (I1a), ``*_iounms_official.py`` (I1b).
"""

from d2_boxunc.modeling.roi_heads import IoUNetROIHeads

from ..common.models.iounet_heads import box_pooler as _box_pooler
from ..common.models.iounet_heads import iou_head as _iou_head
from ..common.models.iounet_heads import iou_pooler as _iou_pooler
from ..common.models.iounet_heads import iou_roi_generator as _iou_roi_generator
from ..common.models.iounet_heads import test_settings as _test_settings
from .iounet_faster_rcnn_R_50_FPN_1x_baseline_official import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model.roi_heads._target_ = IoUNetROIHeads
model.roi_heads.box_pooler = _box_pooler
model.roi_heads.iou_pooler = _iou_pooler
model.roi_heads.box_pooler.aligned = False
model.roi_heads.iou_pooler.aligned = False
model.roi_heads.iou_head = _iou_head
model.roi_heads.iou_roi_generator = _iou_roi_generator
model.roi_heads.update(_test_settings)
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_1x_official"
