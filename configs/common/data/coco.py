"""COCO 2017 detection data (detectron2's common config) evaluated by ``BoxCOCOEvaluator``:
detectron2's COCO AP table plus AP60/AP70/AP80/AP90, computed by faster-coco-eval's C++
COCOeval when installed (detectron2's own compiled evaluator is absent from pure-Python
detectron2 installs), else by pycocotools.
"""

from detectron2.config import LazyCall as L
from detectron2.model_zoo import get_config

from d2_boxunc.evaluation.coco_evaluator import BoxCOCOEvaluator

dataloader = get_config("common/data/coco.py").dataloader
dataloader.evaluator = L(BoxCOCOEvaluator)(
    dataset_name="${..test.dataset.names}",
    backend="auto",
)
