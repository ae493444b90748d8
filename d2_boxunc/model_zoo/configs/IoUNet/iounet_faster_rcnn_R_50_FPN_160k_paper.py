"""I4: I1 with the paper's training recipe: 160k iterations at 16 images, lr 0.01 (x0.1 at 120k),
constant warm-up at lr 0.004 for the first 10k iterations, weight decay 1e-4, single-scale
training and testing at short side 800 / long side <= 1200, and PrRoIPool without the half-pixel
offset (``aligned=False``), as the official op computes it. Paper 38.1.

Deviations from the official recipe (the paper; there is no released training code): the schedule
and sizes above come from an earlier reading of the paper and are not yet checked against its full
text; the ImageNet initialisation (unspecified in the paper) is MSRA's caffe R-50 (detectron2's
``R-50.pkl``); the IoU head's loss weight (5), the jittered-RoI sampler and every test setting are
OpenMMLab-IoUNet's (I1), since the paper gives no values.
"""

from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from ..common.official import single_scale as _single_scale
from .iounet_faster_rcnn_R_50_FPN_1x import dataloader, model, optimizer, train

train.max_iter = 160000
optimizer.lr = 0.01
optimizer.weight_decay = 1e-4
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1], milestones=[120000, 160000]),
    warmup_length=10000 / 160000,
    warmup_method="constant",
    warmup_factor=0.4,  # 0.004 / 0.01
)
_single_scale(dataloader, short_edge=800, max_size=1200)
dataloader.test.mapper.augmentations[0].max_size = 1200
model.roi_heads.box_pooler.aligned = False
model.roi_heads.iou_pooler.aligned = False
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_160k_paper"
