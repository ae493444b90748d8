"""KL-Loss's claim that ambiguous edges get a larger variance, probed without the detector's
proposals: the box head reads each ground-truth box itself, so its σ reflects the object alone
(detections inherit part of their σ from how far their proposal was)."""

from __future__ import annotations

import numpy as np
import torch
from detectron2.structures import Boxes

from .matching import ground_truth

__all__ = ["sigma_at_ground_truth"]


@torch.no_grad()
def sigma_at_ground_truth(model, cfg, dataset_dicts: list[dict]) -> dict:
    """Mean predicted σ / object size with each ground-truth box as the RoI, over blurred-edge
    and over sharp objects, and their counts.  Needs a KL-Loss model (a box predictor returning
    log-variances) with detectron2's ``StandardROIHeads`` layout."""
    from detectron2.config import instantiate

    mapper = instantiate(cfg.dataloader.test.mapper)
    model.eval()
    heads = model.roi_heads
    groups = {True: [], False: []}
    for d in dataset_dicts:
        gt_boxes, gt_classes, gt_blurred = ground_truth(d)
        if len(gt_boxes) == 0:
            continue
        inputs = mapper(dict(d))
        h, w = inputs["image"].shape[1:]
        scale = torch.tensor([w / d["width"], h / d["height"]] * 2)
        boxes = Boxes(gt_boxes * scale)
        images = model.preprocess_image([inputs])
        features = model.backbone(images.tensor)
        x = heads.box_pooler([features[f] for f in heads.box_in_features], [boxes])
        predictions = heads.box_predictor(heads.box_head(x))
        if len(predictions) != 3:
            raise ValueError("sigma_at_ground_truth: the box predictor returns no log-variances")
        log_vars = predictions[2].view(len(boxes), -1, 4)
        cls = gt_classes if log_vars.shape[1] > 1 else torch.zeros_like(gt_classes)
        # the std relative to the box, in delta units: sigma_px / size = exp(alpha / 2) / weight
        weights = torch.tensor(heads.box_predictor.box2box_transform.weights)
        rel = ((0.5 * log_vars[torch.arange(len(boxes)), cls]).exp() / weights).mean(dim=1)
        for r, b in zip(rel.tolist(), gt_blurred.tolist()):
            groups[b].append(r)
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {
        "rel_sigma_at_gt_blurred": mean(groups[True]),
        "rel_sigma_at_gt_sharp": mean(groups[False]),
        "num_blurred": len(groups[True]),
        "num_sharp": len(groups[False]),
    }
