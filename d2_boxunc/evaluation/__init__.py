"""Dataset evaluators (detectron2 ``DatasetEvaluator``s) for localisation quality."""

__all__: list[str] = []

from .box_uncertainty_evaluator import BoxUncertaintyEvaluator  # noqa: E402
from .coco_evaluator import BoxCOCOEvaluator  # noqa: E402
from .lrp_evaluator import LRPEvaluator  # noqa: E402

__all__ += [
    "BoxCOCOEvaluator",
    "BoxUncertaintyEvaluator",
    "LRPEvaluator",
]
