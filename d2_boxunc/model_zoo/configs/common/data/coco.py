"""COCO 2017 detection data (detectron2's common config) with d2_boxunc's evaluators
(``configs/common/evaluation.py``): the COCO AP table plus AP60/AP70/AP80/AP90, computed by
faster-coco-eval's C++ COCOeval when installed (detectron2's own compiled evaluator is absent from
pure-Python detectron2 installs), else by pycocotools; oLRP; box-uncertainty calibration.
"""

from detectron2.model_zoo import get_config

from ..evaluation import evaluator

dataloader = get_config("common/data/coco.py").dataloader
dataloader.evaluator = evaluator
