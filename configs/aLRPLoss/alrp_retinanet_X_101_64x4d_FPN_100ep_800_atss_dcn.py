"""A6 (DCN): A6 with modulated deformable convolutions in c3-c5.
Reference (mmdet port): 48.6 AP minival / 48.9 test-dev (paper abstract: 48.9 test-dev).
The deformable blocks run on torchvision's ``deform_conv2d``
(``d2_boxunc.modeling.resnext.TVDeformBottleneckBlock``), so no detectron2 compiled ops are
needed; checkpoint as in A4.
"""

from ..common.alrp import dataloader, model, optimizer, train
from ..common.alrp import epoch_schedule as _epoch_schedule
from ..common.alrp import set_scale as _set_scale
from ..common.alrp import use_atss as _use_atss
from ..common.alrp import use_backbone as _use_backbone

_use_backbone(model, train, dataloader, "X_101_64x4d_dcn")
_use_atss(model, scales_per_octave=3)
_set_scale(dataloader, model, 800)
dataloader.train.total_batch_size = 16  # 4 GPUs x 4 images (assumed; the reference does not say)
optimizer.lr = 0.004
train.max_iter, lr_multiplier = _epoch_schedule(100, (60, 80), total_batch=16)
train.output_dir = "./output/alrp_retinanet_X_101_64x4d_FPN_100ep_800_atss_dcn"
