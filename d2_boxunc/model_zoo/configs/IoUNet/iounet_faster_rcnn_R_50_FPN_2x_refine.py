"""I1 on the 2x schedule (180k iterations, steps 120k/160k), refinement on: the full IoU-Net
pipeline (IoU-guided NMS + refinement) with the refinement knobs (``model.roi_heads.refine_lambda``,
``refine_steps``, ``refine_omega1/2``) exposed for sweeps.  Compare with detectron2's 2x Faster
R-CNN (``configs/Baselines/faster_rcnn_R_50_FPN_2x.py``).

Deviations from the official recipe: not a paper row (our 2x extension); I1's list applies
(multi-scale training, 1000-iteration warm-up, MSRA R-50, PrRoIPool ``aligned=True``).
"""

from detectron2.model_zoo import get_config

from .iounet_faster_rcnn_R_50_FPN_1x import dataloader, model, optimizer, train

lr_multiplier = get_config("common/coco_schedule.py").lr_multiplier_2x
train.max_iter = 180000
model.roi_heads.refine = True
model.roi_heads.refine_lambda = 0.5
train.output_dir = "./output/iounet_faster_rcnn_R_50_FPN_2x_refine"
