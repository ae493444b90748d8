"""The evaluators every paper config runs (``dataloader.evaluator``), in the order they report.

- ``BoxCOCOEvaluator``: detectron2's COCO AP table plus AP60/AP70/AP80/AP90 (``"bbox"``, and
  ``"segm"`` for Mask R-CNN); it saves the predictions (``coco_instances_results.json``);
- ``LRPEvaluator``: oLRP, moLRP and its localisation / FP / FN components (``"lrp"``);
- ``BoxUncertaintyEvaluator``: score calibration and outcome breakdown for every model; σ and
  predicted-IoU calibration for models that output ``pred_boxes_std`` / ``pred_ious``
  (``"box_uncertainty"``).

Every evaluator reads the test set from ``dataloader.test.dataset.names`` and writes to
``train.output_dir`` (interpolations, so one override changes all of them).  To run fewer
evaluators, give ``dataloader.evaluator`` another list in a config file, e.g.
``dataloader.evaluator.evaluators = [coco_evaluator]``; to change one, override its arguments,
e.g. ``dataloader.evaluator.evaluators.1.tau=0.75``.  See docs/evaluation.md.
"""

from detectron2.config import LazyCall as L
from detectron2.evaluation import DatasetEvaluators

from d2_boxunc.evaluation import BoxCOCOEvaluator, BoxUncertaintyEvaluator, LRPEvaluator

TEST_SET = "${dataloader.test.dataset.names}"
OUTPUT_DIR = "${train.output_dir}"

coco_evaluator = L(BoxCOCOEvaluator)(dataset_name=TEST_SET, output_dir=OUTPUT_DIR, backend="auto")
lrp_evaluator = L(LRPEvaluator)(dataset_name=TEST_SET, output_dir=OUTPUT_DIR)
box_uncertainty_evaluator = L(BoxUncertaintyEvaluator)(dataset_name=TEST_SET, output_dir=OUTPUT_DIR)

evaluator = L(DatasetEvaluators)(
    evaluators=[coco_evaluator, lrp_evaluator, box_uncertainty_evaluator]
)
