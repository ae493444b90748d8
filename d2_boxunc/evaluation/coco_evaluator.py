"""COCO AP with the high-IoU columns box-quality papers report, on a fast COCOeval backend.

:class:`BoxCOCOEvaluator` is detectron2's ``COCOEvaluator`` with two changes:

- besides AP, AP50, AP75, APs, APm, APl it reports **AP60, AP70, AP80 and AP90** (AP at one IoU
  threshold, all areas, 100 detections): KL-Loss and IoU-Net state their gains at high IoU;
- every saved result (``coco_instances_results.json``) also carries ``bbox_std`` (σ of x1, y1,
  x2, y2 in pixels) and ``pred_iou`` when the model predicts them (KL-Loss, IoU-Net), so the
  detections can be analysed after the run (``d2_boxunc.study``); COCOeval ignores the fields;
- it evaluates with ``faster-coco-eval``'s C++ ``COCOeval_faster`` when that package is
  installed (``backend="auto"``), else with pycocotools' ``COCOeval``.  detectron2's own compiled
  evaluator is absent from pure-Python detectron2 installs; both backends give the same table
  (``tests/evaluation/test_coco_evaluator.py``).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os

import numpy as np
from detectron2.evaluation import COCOEvaluator
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table
from pycocotools.cocoeval import COCOeval

__all__ = ["BoxCOCOEvaluator", "HIGH_IOU_THRESHOLDS", "coco_results_from", "cocoeval_class"]

HIGH_IOU_THRESHOLDS = (0.6, 0.7, 0.8, 0.9)
BACKENDS = ("auto", "faster_coco_eval", "pycocotools")


def cocoeval_class(backend: str = "auto"):
    """The COCOeval class of ``backend``: ``"faster_coco_eval"`` (C++), ``"pycocotools"`` or
    ``"auto"`` (the first when installed)."""
    if backend not in BACKENDS:
        raise ValueError(f"COCO evaluation backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "pycocotools":
        return COCOeval
    try:
        from faster_coco_eval import COCOeval_faster
    except ImportError:
        if backend == "faster_coco_eval":
            raise ValueError(
                "COCO evaluation backend 'faster_coco_eval' needs `pip install faster-coco-eval`"
            ) from None
        return COCOeval
    return COCOeval_faster


def coco_results_from(predictions: list[dict], metadata) -> list[dict]:
    """COCO-format results of a ``COCOEvaluator``'s gathered predictions, with the dataset's
    own category ids (detectron2 predicts contiguous ids)."""
    results = list(itertools.chain(*[p["instances"] for p in predictions if "instances" in p]))
    mapping = metadata.get("thing_dataset_id_to_contiguous_id", None)
    if mapping is not None:
        reverse = {v: k for k, v in mapping.items()}
        for r in results:
            if r["category_id"] not in reverse:
                raise ValueError(
                    f"a prediction has class {r['category_id']}, but the dataset "
                    f"'{metadata.name}' has {len(reverse)} classes"
                )
            r["category_id"] = reverse[r["category_id"]]
    return results


def ap_at_iou(coco_eval, iou: float) -> float:
    """AP x 100 at one IoU threshold (all areas, the last maxDets), from an accumulated COCOeval;
    NaN when no category has ground truth."""
    thresholds = np.asarray(coco_eval.params.iouThrs)
    hits = np.flatnonzero(np.isclose(thresholds, iou))
    if hits.size == 0:
        raise ValueError(f"IoU threshold {iou} is not one of COCOeval's {thresholds.tolist()}")
    precision = np.asarray(coco_eval.eval["precision"])[hits[0], :, :, 0, -1]
    precision = precision[precision > -1]
    return float(100.0 * precision.mean()) if precision.size else float("nan")


class BoxCOCOEvaluator(COCOEvaluator):
    """detectron2's ``COCOEvaluator`` plus AP60/AP70/AP80/AP90 and a selectable COCOeval backend.

    Args:
        dataset_name, tasks, distributed, output_dir, max_dets_per_image, allow_cached_coco:
            as for ``COCOEvaluator``.
        backend: ``"auto"`` (faster-coco-eval when installed), ``"faster_coco_eval"`` or
            ``"pycocotools"``.
    """

    def __init__(
        self,
        dataset_name: str,
        tasks=None,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        max_dets_per_image: int | None = None,
        allow_cached_coco: bool = True,
        backend: str = "auto",
    ):
        self._cocoeval = cocoeval_class(backend)
        super().__init__(
            dataset_name,
            tasks=tasks,
            distributed=distributed,
            output_dir=output_dir,
            max_dets_per_image=max_dets_per_image,
            use_fast_impl=False,
            allow_cached_coco=allow_cached_coco,
        )

    @property
    def backend(self) -> str:
        """The backend in use: ``"faster_coco_eval"`` or ``"pycocotools"``."""
        return "pycocotools" if self._cocoeval is COCOeval else "faster_coco_eval"

    def process(self, inputs, outputs):
        super().process(inputs, outputs)
        # super() appended one entry per output with instances or proposals, in order
        kept = [o for o in outputs if "instances" in o or "proposals" in o]
        added = self._predictions[len(self._predictions) - len(kept) :]
        for pred, output in zip(added, kept):
            inst = output.get("instances", None)
            if inst is None:
                continue
            for field, key in (("pred_boxes_std", "bbox_std"), ("pred_ious", "pred_iou")):
                if inst.has(field):
                    values = inst.get(field).detach().cpu().tolist()
                    for result, value in zip(pred["instances"], values):
                        result[key] = value

    def _eval_predictions(self, predictions, img_ids=None):
        coco_results = coco_results_from(predictions, self._metadata)
        tasks = self._tasks or self._tasks_from_predictions(coco_results)
        if self._output_dir:
            path = os.path.join(self._output_dir, "coco_instances_results.json")
            self._logger.info(f"Saving results to {path}")
            with PathManager.open(path, "w") as f:
                f.write(json.dumps(coco_results))
        if not self._do_evaluation:
            self._logger.info("Annotations are not available for evaluation.")
            return
        self._logger.info(f"Evaluating predictions with {self.backend} ...")
        for task in sorted(tasks):
            coco_eval = self.run_cocoeval(coco_results, task, img_ids) if coco_results else None
            self._results[task] = self._derive_coco_results(
                coco_eval, task, class_names=self._metadata.get("thing_classes")
            )

    def run_cocoeval(self, coco_results: list[dict], task: str, img_ids=None):
        """Evaluate, accumulate and summarise ``coco_results`` (dataset category ids) for
        ``task`` ("bbox" or "segm") with this evaluator's backend; return the COCOeval."""
        if task == "segm":  # mask AP uses the mask area, not the box's
            coco_results = [{k: v for k, v in r.items() if k != "bbox"} for r in coco_results]
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = self._coco_api.loadRes(coco_results)
            coco_eval = self._cocoeval(self._coco_api, coco_dt, task)
            if self._max_dets_per_image is not None:
                coco_eval.params.maxDets = list(self._max_dets_per_image)
            if img_ids is not None:
                coco_eval.params.imgIds = img_ids
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        return coco_eval

    def _derive_coco_results(self, coco_eval, iou_type, class_names=None):
        results = super()._derive_coco_results(coco_eval, iou_type, class_names)
        if iou_type == "keypoints":
            return results
        high = {
            f"AP{round(100 * t)}": (ap_at_iou(coco_eval, t) if coco_eval is not None else np.nan)
            for t in HIGH_IOU_THRESHOLDS
        }
        self._logger.info(f"AP at high IoU ({iou_type}):\n" + create_small_table(high))
        # AP, AP50, AP60, AP70, AP75, AP80, AP90, then the rest (sizes, per category)
        order = ["AP", "AP50", "AP60", "AP70", "AP75", "AP80", "AP90"]
        merged = {**results, **high}
        return {k: merged[k] for k in order if k in merged} | {
            k: v for k, v in merged.items() if k not in order
        }
