"""COCO 2017 detection data (detectron2's common config) with the pure-Python COCOeval.

detectron2's compiled fast COCOeval is not part of the pure-Python detectron2 install, so
evaluation uses pycocotools' reference implementation (same numbers, slower).
"""

from detectron2.model_zoo import get_config

dataloader = get_config("common/data/coco.py").dataloader
dataloader.evaluator.use_fast_impl = False
