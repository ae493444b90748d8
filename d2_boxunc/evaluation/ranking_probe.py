"""aLRP Loss's claim that the ranking follows localisation quality, probed on the positives the
loss itself ranks: every anchor the model's own matcher assigns to a ground-truth box, with its
score for that box's class and the IoU of its decoded box.  Detections after NMS keep about one
anchor per object (the best-scored), so the score-vs-IoU correlation of matched detections sees
little of the ranking among an object's positives that the loss shapes."""

from __future__ import annotations

import numpy as np
import torch
from detectron2.layers import cat
from detectron2.modeling.meta_arch.dense_detector import permute_to_N_HWA_K
from detectron2.structures import Boxes, Instances
from detectron2.structures.boxes import matched_pairwise_iou
from scipy.stats import spearmanr

from .matching import ground_truth

__all__ = ["positive_scores_and_ious", "positive_ranking_probe"]


@torch.no_grad()
def positive_scores_and_ious(
    model, cfg, dataset_dict: dict, mapper=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, IoUs, objects) of one image's positive anchors under ``model.label_anchors``: the
    sigmoid score of the matched ground truth's class, the IoU of the decoded box with that box,
    and the index of its ground-truth box in the image's non-crowd annotations.  Needs a detectron2
    RetinaNet-style dense detector. ``mapper``: the config's test mapper, if already built."""
    from detectron2.config import instantiate

    gt_boxes, gt_classes, _ = ground_truth(dataset_dict)
    if len(gt_boxes) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    mapper = mapper or instantiate(cfg.dataloader.test.mapper)
    inputs = mapper(dict(dataset_dict))
    h, w = inputs["image"].shape[1:]
    scale = torch.tensor([w / dataset_dict["width"], h / dataset_dict["height"]] * 2)
    gt = Instances((h, w), gt_boxes=Boxes(gt_boxes * scale), gt_classes=gt_classes)
    model.eval()
    images = model.preprocess_image([inputs])
    gt = gt.to(images.tensor.device)
    features = model.backbone(images.tensor)
    features = [features[f] for f in model.head_in_features]
    anchors = model.anchor_generator(features)
    pred_logits, pred_deltas = model.head(features)
    logits = cat([permute_to_N_HWA_K(x, model.num_classes) for x in pred_logits], dim=1)[0]
    deltas = cat([permute_to_N_HWA_K(x, 4) for x in pred_deltas], dim=1)[0]
    gt_labels, matched_boxes = model.label_anchors(anchors, [gt])
    labels = gt_labels[0]
    pos = (labels >= 0) & (labels != model.num_classes)
    boxes = model.box2box_transform.apply_deltas(deltas[pos], Boxes.cat(anchors).tensor[pos])
    iou = matched_pairwise_iou(Boxes(boxes), Boxes(matched_boxes[0][pos]))
    score = logits[pos, labels[pos]].sigmoid()
    # which ground-truth box each positive was matched to, as an index into the image's boxes
    obj = (matched_boxes[0][pos][:, None, :] == gt.gt_boxes.tensor[None]).all(-1).int().argmax(1)
    return score.float().cpu().numpy(), iou.float().cpu().numpy(), obj.cpu().numpy()


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def positive_ranking_probe(model, cfg, dataset_dicts: list[dict]) -> dict:
    """Score-vs-IoU Spearman of the positive anchors of ``dataset_dicts``: pooled over all
    positives, and within each object (the mean over objects with >= 3 positives: does the
    best-localised anchor of an object outrank its other anchors?); counts and mean IoU."""
    from detectron2.config import instantiate

    mapper = instantiate(cfg.dataloader.test.mapper)  # once, not per image
    scores, ious, within = [], [], []
    for d in dataset_dicts:
        s, i, obj = positive_scores_and_ious(model, cfg, d, mapper)
        scores.append(s)
        ious.append(i)
        within += [_spearman(s[obj == k], i[obj == k]) for k in np.unique(obj)]
    s, i = np.concatenate(scores), np.concatenate(ious)
    within = np.asarray(within)
    within = within[np.isfinite(within)]
    return {
        "positive_score_iou_spearman": _spearman(s, i),
        "within_object_spearman": float(within.mean()) if within.size else float("nan"),
        "num_positives": int(len(s)),
        "num_objects_ranked": int(within.size),
        "positive_mean_iou": float(i.mean()) if len(i) else float("nan"),
    }
