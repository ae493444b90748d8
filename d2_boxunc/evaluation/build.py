"""Put the box-quality evaluators (oLRP, box uncertainty) next to a config's own evaluator."""

from __future__ import annotations

import logging

from detectron2.data import DatasetCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator, DatasetEvaluators

from .box_uncertainty_evaluator import BoxUncertaintyEvaluator
from .lrp_evaluator import LRPEvaluator

__all__ = ["add_box_quality_evaluators"]

logger = logging.getLogger(__name__)


def _flatten(evaluator) -> list[DatasetEvaluator]:
    if evaluator is None:
        return []
    if isinstance(evaluator, DatasetEvaluators):
        return [e for sub in evaluator._evaluators for e in _flatten(sub)]
    return [evaluator]


def _test_dataset_name(cfg) -> str | None:
    dataset = cfg.dataloader.get("test", {}).get("dataset", None)
    names = dataset.get("names", None) if dataset is not None else None
    if names is None:
        return None
    return names if isinstance(names, str) else (list(names)[0] if len(names) else None)


def add_box_quality_evaluators(
    cfg, evaluator: DatasetEvaluator | None, output_dir: str | None = None
) -> DatasetEvaluators:
    """Return ``evaluator`` together with an :class:`LRPEvaluator` (for every ``COCOEvaluator``
    found in it, on the same dataset) and a :class:`BoxUncertaintyEvaluator` on the test set
    (score calibration and outcome breakdown for every model; σ / IoU metrics for models that
    output ``pred_boxes_std`` / ``pred_ious``).

    Evaluators of these types already present are not added twice.  Setting
    ``+dataloader.box_quality_eval=False`` on the command line turns the additions off.
    """
    base = _flatten(evaluator)
    if not cfg.dataloader.get("box_quality_eval", True):
        return DatasetEvaluators(base)
    extra: list[DatasetEvaluator] = []
    have_lrp = {e._metadata.name for e in base if isinstance(e, LRPEvaluator)}
    for e in base:
        if isinstance(e, COCOEvaluator) and not isinstance(e, LRPEvaluator):
            name = e._metadata.name
            if name not in have_lrp and (e._tasks is None or "bbox" in e._tasks):
                extra.append(LRPEvaluator(name, distributed=e._distributed, output_dir=output_dir))
                have_lrp.add(name)
    if not any(isinstance(e, BoxUncertaintyEvaluator) for e in base):
        name = _test_dataset_name(cfg)
        if name is not None and name in DatasetCatalog.list():
            extra.append(BoxUncertaintyEvaluator(name, output_dir=output_dir))
    if extra:
        logger.info("Adding evaluators: " + ", ".join(type(e).__name__ for e in extra))
    return DatasetEvaluators(base + extra)
