"""Does the predicted box std mean anything? Match detections to ground truth and compare the
predicted per-coordinate std (``pred_boxes_std``) with the actual error, overall and on the
synthetic set's blurred-edge objects vs sharp ones (KL-Loss's claim: ambiguous edges get a larger
variance)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from detectron2.structures import Boxes, BoxMode, Instances, pairwise_iou
from scipy.stats import spearmanr

__all__ = [
    "SigmaReport",
    "match_to_ground_truth",
    "predict_dataset",
    "sigma_at_ground_truth",
    "sigma_report",
]


@dataclass
class SigmaReport:
    """Summary over matched detections (IoU >= threshold, same class)."""

    num_matched: int
    spearman_sigma_vs_error: float  # over every coordinate of every matched detection
    rel_sigma_blurred: float  # mean of sigma / object size on objects flagged ``blurred``
    rel_sigma_sharp: float  # same on the others
    rel_error_blurred: float  # mean of |error| / object size on blurred-edge objects
    rel_error_sharp: float
    num_blurred: int
    num_sharp: int

    def as_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        return [
            f"sigma vs |error|: Spearman rho = {self.spearman_sigma_vs_error:.3f} "
            f"over {self.num_matched} matched detections x 4 coordinates",
            f"mean sigma / object size: blurred-edge objects {self.rel_sigma_blurred:.4f} "
            f"(n={self.num_blurred}) vs sharp {self.rel_sigma_sharp:.4f} (n={self.num_sharp}); "
            f"actual |error| / size {self.rel_error_blurred:.4f} vs {self.rel_error_sharp:.4f}",
        ]


def _gt(dataset_dict: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    annos = [a for a in dataset_dict.get("annotations", []) if not a.get("iscrowd", 0)]
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    classes = torch.tensor([a["category_id"] for a in annos], dtype=torch.long)
    blurred = torch.tensor([bool(a.get("blurred", 0)) for a in annos], dtype=torch.bool)
    return boxes, classes, blurred


def match_to_ground_truth(
    pred: Instances, gt_boxes: torch.Tensor, gt_classes: torch.Tensor, iou_threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy COCO-style matching by decreasing score: each GT takes at most one detection of its
    class with IoU >= ``iou_threshold``. Returns (detection indices, GT indices)."""
    if len(pred) == 0 or len(gt_boxes) == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    iou = pairwise_iou(pred.pred_boxes.to("cpu"), Boxes(gt_boxes))
    iou[pred.pred_classes.cpu()[:, None] != gt_classes[None, :]] = -1.0
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    dets, gts = [], []
    for d in torch.argsort(pred.scores.cpu(), descending=True, stable=True).tolist():
        row = iou[d].masked_fill(taken, -1.0)
        best = int(row.argmax())
        if row[best] >= iou_threshold:
            taken[best] = True
            dets.append(d)
            gts.append(best)
    return torch.tensor(dets, dtype=torch.long), torch.tensor(gts, dtype=torch.long)


def sigma_report(pairs, iou_threshold: float = 0.5) -> SigmaReport:
    """``pairs``: iterable of ``(dataset_dict, Instances)`` with ``pred_boxes_std`` in the pixels of
    the dataset dict's image (as returned by the model after post-processing)."""
    sigmas, errors, rel, rel_err, blurred = [], [], [], [], []
    for dataset_dict, pred in pairs:
        if not pred.has("pred_boxes_std"):
            raise ValueError(
                "sigma_report: predictions lack 'pred_boxes_std' (not a KL-Loss model?)"
            )
        gt_boxes, gt_classes, gt_blurred = _gt(dataset_dict)
        d, g = match_to_ground_truth(pred, gt_boxes, gt_classes, iou_threshold)
        if len(d) == 0:
            continue
        std = pred.pred_boxes_std.detach().cpu().float()[d]
        box = pred.pred_boxes.tensor.detach().cpu().float()[d]
        gt = gt_boxes[g]
        size = (gt[:, 2:] - gt[:, :2]).repeat(1, 2).clamp(min=1.0)
        sigmas.append(std)
        errors.append((box - gt).abs())
        rel.append((std / size).mean(dim=1))
        rel_err.append(((box - gt).abs() / size).mean(dim=1))
        blurred.append(gt_blurred[g])
    if not sigmas:
        nan = float("nan")
        return SigmaReport(0, nan, nan, nan, nan, nan, 0, 0)
    sigma, error = torch.cat(sigmas), torch.cat(errors)
    rel_all, err_all, blur = torch.cat(rel), torch.cat(rel_err), torch.cat(blurred)
    rho = spearmanr(sigma.flatten().numpy(), error.flatten().numpy()).statistic
    mean = lambda t: float(t.mean()) if t.numel() else float("nan")  # noqa: E731
    return SigmaReport(
        num_matched=len(sigma),
        spearman_sigma_vs_error=float(np.nan_to_num(rho, nan=0.0)),
        rel_sigma_blurred=mean(rel_all[blur]),
        rel_sigma_sharp=mean(rel_all[~blur]),
        rel_error_blurred=mean(err_all[blur]),
        rel_error_sharp=mean(err_all[~blur]),
        num_blurred=int(blur.sum()),
        num_sharp=int((~blur).sum()),
    )


@torch.no_grad()
def predict_dataset(model, cfg, dataset_dicts: list[dict]) -> list[tuple[dict, Instances]]:
    """Run ``model`` (eval mode) through the config's test mapper on ``dataset_dicts``; returns
    ``(dataset_dict, instances)`` pairs, instances on the CPU in original-image pixels."""
    from detectron2.config import instantiate

    mapper = instantiate(cfg.dataloader.test.mapper)
    model.eval()
    pairs = []
    for d in dataset_dicts:
        inputs = mapper(dict(d))
        out = model([inputs])[0]["instances"].to("cpu")
        pairs.append((d, out))
    return pairs


@torch.no_grad()
def sigma_at_ground_truth(model, cfg, dataset_dicts: list[dict]) -> dict:
    """Predicted sigma / object size when the box head looks at each ground-truth box itself.

    Detections inherit part of their sigma from how far their proposal was from the object; fed
    the true box, the head's variance reflects the object alone (its edge ambiguity). Returns the
    mean over blurred-edge and over sharp objects, and their counts. Needs a KL-Loss model (a box
    predictor returning log-variances) with detectron2's ``StandardROIHeads`` layout."""
    from detectron2.config import instantiate

    mapper = instantiate(cfg.dataloader.test.mapper)
    model.eval()
    heads = model.roi_heads
    groups = {True: [], False: []}
    for d in dataset_dicts:
        gt_boxes, gt_classes, gt_blurred = _gt(d)
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
