"""K0 official: the baseline Faster R-CNN R50-FPN 2x in the recipe of the official KL-Loss code
(Detectron's ``configs/12_2017_baselines/e2e_faster_rcnn_R-50-FPN_2x.yaml``, whose COCO model is
the official KL-Loss training's ``TRAIN.WEIGHTS``): single-scale 800 / 1333 training, warm-up 500
iterations from 1/3 of the lr, RoIAlign with sampling ratio 2 (no half-pixel shift), smooth-L1
beta 1 (Fast R-CNN head) and 1/9 (RPN), MSRA's caffe R-50. Paper 37.9 box AP (Detectron's 2x
model).

Deviations from the official recipe: boxes without Detectron's "+1" in widths and heights
(detectron2's convention, docs/design.md#conventions); detectron2's ImageNet pixel mean (103.53,
116.28, 123.675) instead of Detectron's (102.98, 115.95, 122.77); the RPN keeps 1000 proposals per
image in training where Detectron keeps 2000 per two-image GPU batch.
"""

from ..common.official import detectron_recipe as _detectron_recipe
from .kl_faster_rcnn_R_50_FPN_2x_baseline import dataloader, lr_multiplier, model, optimizer, train

_detectron_recipe(dataloader, lr_multiplier, model, train.max_iter)
train.output_dir = "./output/kl_faster_rcnn_R_50_FPN_2x_baseline_official"
