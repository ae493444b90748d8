"""Evaluating a config's model on ``dataloader.test``: one model (:func:`do_test`, what
``train_net.py`` runs), or several test-time variants of one checkpoint in one pass
(:func:`evaluate_variants`, what the study runs).

Test-time variants of an R-CNN (variance voting, soft-NMS, IoU-guided NMS, refinement, ...) change
only ``model.roi_heads``; their backbone features and proposals are the same.
:class:`SharedTrunkRCNN` computes those once per batch and runs each variant's ROI heads and
post-processing on them, so evaluating k variants costs one backbone pass, not k.
"""

from __future__ import annotations

import json
import math
import os

from detectron2.config import instantiate
from detectron2.evaluation import DatasetEvaluator, inference_on_dataset, print_csv_format
from detectron2.utils import comm
from omegaconf import OmegaConf
from torch import nn

__all__ = [
    "HEADLINE_METRICS",
    "FanOutEvaluator",
    "NonFiniteMetricError",
    "SharedTrunkRCNN",
    "check_headline_metrics",
    "do_test",
    "evaluate_variants",
    "save_results",
    "shares_trunk",
]

# The headline box metrics: NaN here is an error, not a number for eval_results.json.  Other
# entries may be NaN on purpose (the AP of a class without ground truth, a calibration metric
# that is undefined without detections) and are written as they are.
HEADLINE_METRICS = (("bbox", "AP"), ("lrp", "oLRP"))


class NonFiniteMetricError(RuntimeError):
    """A headline metric of an evaluation is NaN or infinite (reported as one line, exit 1)."""


def check_headline_metrics(results: dict) -> None:
    """Raise :class:`NonFiniteMetricError` when a :data:`HEADLINE_METRICS` entry is not finite."""
    bad = [
        f"{task}/{name} = {results[task][name]}"
        for task, name in HEADLINE_METRICS
        if name in results.get(task, {}) and not math.isfinite(results[task][name])
    ]
    if bad:
        raise NonFiniteMetricError(
            f"the evaluation gave {', '.join(bad)} (COCO AP is NaN when the model made no "
            "detection at all: untrained or diverged weights?); eval_results.json not written"
        )


def save_results(cfg, results: dict) -> None:
    """Print ``results``, refuse a non-finite headline metric, and write them to
    ``train.output_dir/eval_results.json`` (main process only)."""
    if not (comm.is_main_process() and results):
        return
    print_csv_format(results)
    check_headline_metrics(results)
    os.makedirs(cfg.train.output_dir, exist_ok=True)
    with open(os.path.join(cfg.train.output_dir, "eval_results.json"), "w") as f:
        json.dump(results, f, indent=1)


def do_test(cfg, model) -> dict:
    """Evaluate ``model`` on ``dataloader.test`` with exactly the config's evaluators; print and
    save (``eval_results.json``) the results.

    Raises:
        NonFiniteMetricError: a headline metric (:data:`HEADLINE_METRICS`) is NaN; nothing saved.
    """
    if "evaluator" not in cfg.dataloader:
        return {}
    evaluator = instantiate(cfg.dataloader.evaluator)
    results = inference_on_dataset(model, instantiate(cfg.dataloader.test), evaluator)
    save_results(cfg, results)
    return results


def _postprocessor(model: nn.Module):
    """The function that turns ``model``'s ROI-head results into its outputs, when known: its
    ``postprocess`` method, or for detectron2's own ``GeneralizedRCNN`` the same rescaling."""
    from detectron2.modeling import GeneralizedRCNN

    from d2_boxunc.modeling.meta_arch.rcnn import postprocess_rcnn

    post = getattr(model, "postprocess", None)
    if callable(post):
        return post
    return postprocess_rcnn if type(model) is GeneralizedRCNN else None


class SharedTrunkRCNN(nn.Module):
    """Several R-CNNs that share their backbone and proposal generator (the same weights), run
    as one: per batch, ``models[0]``'s backbone and proposals once, then each model's ROI heads
    and post-processing.  ``forward`` returns one detectron2 output list per model."""

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        self._post = [_postprocessor(m) for m in models]
        if None in self._post:
            raise TypeError("SharedTrunkRCNN: every model must be a GeneralizedRCNN or BoxUncRCNN")
        self.models = nn.ModuleList(models)

    def forward(self, batched_inputs: list[dict]) -> list[list[dict]]:
        trunk = self.models[0]
        images = trunk.preprocess_image(batched_inputs)
        features = trunk.backbone(images.tensor)
        proposals, _ = trunk.proposal_generator(images, features, None)
        outputs = []
        for m, post in zip(self.models, self._post):
            results, _ = m.roi_heads(images, features, proposals, None)
            outputs.append(post(results, batched_inputs))
        return outputs


class FanOutEvaluator(DatasetEvaluator):
    """Hands output ``i`` of :class:`SharedTrunkRCNN` to evaluator ``i``; ``evaluate`` returns
    the list of their results."""

    def __init__(self, evaluators: list[DatasetEvaluator]):
        self.evaluators = list(evaluators)

    def reset(self) -> None:
        for e in self.evaluators:
            e.reset()

    def process(self, inputs, outputs) -> None:
        for e, out in zip(self.evaluators, outputs, strict=True):
            e.process(inputs, out)

    def evaluate(self) -> list[dict]:
        return [e.evaluate() or {} for e in self.evaluators]


def _model_without_roi_heads(cfg) -> dict:
    model = OmegaConf.to_container(cfg.model, resolve=True)
    model.pop("roi_heads", None)
    return model


def shares_trunk(cfgs: list, models: list[nn.Module]) -> bool:
    """True when ``models`` (built from ``cfgs``) can share one backbone and proposal pass:
    R-CNNs (``GeneralizedRCNN``, or a subclass with a ``postprocess`` method) whose configs differ only in ``model.roi_heads``, with
    the same weights and the same test data and device."""
    if len(cfgs) < 2 or not all(
        _postprocessor(m) is not None and "evaluator" in c.dataloader
        for c, m in zip(cfgs, models, strict=True)
    ):
        return False

    def signature(cfg) -> tuple:
        test = OmegaConf.to_container(cfg.dataloader.test, resolve=True)
        trunk = _model_without_roi_heads(cfg)
        return cfg.train.init_checkpoint, cfg.train.device, test, trunk

    first = signature(cfgs[0])
    return all(signature(c) == first for c in cfgs[1:])


def evaluate_variants(cfgs: list, models: list[nn.Module]) -> list[dict]:
    """Evaluate each ``models[i]`` as ``cfgs[i]`` says (its evaluators, its ``output_dir``) and
    save each result like :func:`do_test`; one shared backbone and proposal pass when
    :func:`shares_trunk`, else one model after another."""
    if not shares_trunk(cfgs, models):
        return [do_test(c, m) for c, m in zip(cfgs, models, strict=True)]
    evaluators = [instantiate(c.dataloader.evaluator) for c in cfgs]
    loader = instantiate(cfgs[0].dataloader.test)
    results = inference_on_dataset(SharedTrunkRCNN(models), loader, FanOutEvaluator(evaluators))
    for c, r in zip(cfgs, results, strict=True):
        save_results(c, r)
    return results
