"""I4: I1 with the paper's schedule: 160k iterations at 16 images, lr 0.01 (x0.1 at 120k),
constant warm-up at lr 0.004 for the first 10k iterations, weight decay 1e-4, short side 800 /
long side <= 1200 (not yet checked against the paper).  Paper 38.1."""

from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

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
dataloader.train.mapper.augmentations[0].max_size = 1200
dataloader.test.mapper.augmentations[0].max_size = 1200
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_160k_paper"
