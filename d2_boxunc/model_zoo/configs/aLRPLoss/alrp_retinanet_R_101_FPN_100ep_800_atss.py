"""A5: ATSS aLRP RetinaNet R101 at 800 x 800, 3 scales per octave, batch 16 (assumed), lr 0.004,
steps at epochs 60/80. Reference (mmdet port): 45.4 AP minival / 45.9 test-dev.
"""

from ..common.alrp import dataloader, model, optimizer, train
from ..common.alrp import epoch_schedule as _epoch_schedule
from ..common.alrp import set_scale as _set_scale
from ..common.alrp import use_atss as _use_atss
from ..common.alrp import use_backbone as _use_backbone

_use_backbone(model, train, dataloader, "R_101")
_use_atss(model, scales_per_octave=3)
_set_scale(dataloader, model, 800)
dataloader.train.total_batch_size = 16  # 4 GPUs x 4 images (assumed; the reference does not say)
optimizer.lr = 0.004
train.max_iter, lr_multiplier = _epoch_schedule(100, (60, 80), total_batch=16)
train.output_dir = "./output/alrp_retinanet_R_101_FPN_100ep_800_atss"
