"""Does IoU-Net's predicted IoU track localisation? (paper Fig. 2: the predicted IoU correlates
with the true IoU of a detection much better than the classification score does.)

Each detection's true IoU is its largest IoU with a ground-truth box of its class. Correlations
are computed over the detections whose true IoU is at least ``min_true_iou`` (0.5: the head is
trained only on RoIs with IoU >= 0.5, so lower IoUs say nothing about it;
docs/design.md#known-pitfalls).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from detectron2.structures import Boxes, Instances, pairwise_iou
from scipy.stats import pearsonr, spearmanr

from d2_boxunc.evaluation.sigma_report import _gt

__all__ = ["IoUReport", "iou_report", "save_iou_scatter", "true_ious"]


@dataclass
class IoUReport:
    num_detections: int  # with true IoU >= min_true_iou
    min_true_iou: float
    spearman_pred_iou: float
    pearson_pred_iou: float
    spearman_cls_score: float
    pearson_cls_score: float
    true_iou: list = field(default_factory=list, repr=False)
    pred_iou: list = field(default_factory=list, repr=False)
    cls_score: list = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        d = asdict(self)
        for key in ("true_iou", "pred_iou", "cls_score"):
            d.pop(key)
        return d

    def lines(self) -> list[str]:
        return [
            f"predicted IoU vs true IoU: Spearman {self.spearman_pred_iou:.3f}, Pearson "
            f"{self.pearson_pred_iou:.3f}; class score vs true IoU: Spearman "
            f"{self.spearman_cls_score:.3f}, Pearson {self.pearson_cls_score:.3f} "
            f"({self.num_detections} val detections with true IoU >= {self.min_true_iou})"
        ]


def true_ious(pred: Instances, gt_boxes: torch.Tensor, gt_classes: torch.Tensor) -> torch.Tensor:
    """(k,) largest IoU of each detection with a GT box of its class (0 when there is none)."""
    if len(pred) == 0 or len(gt_boxes) == 0:
        return torch.zeros(len(pred))
    iou = pairwise_iou(pred.pred_boxes.to("cpu"), Boxes(gt_boxes))
    iou[pred.pred_classes.cpu()[:, None] != gt_classes[None, :]] = 0.0
    return iou.max(dim=1).values


def _corr(fn, a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(fn(a, b)[0])


def iou_report(pairs, min_true_iou: float = 0.5) -> IoUReport:
    """``pairs``: ``(dataset_dict, Instances)`` from
    :func:`d2_boxunc.evaluation.sigma_report.predict_dataset`; the Instances need ``pred_ious``
    (and ``cls_scores``, else ``scores`` is used as the class score)."""
    t_all, p_all, c_all = [], [], []
    for d, inst in pairs:
        if not inst.has("pred_ious"):
            raise ValueError("iou_report needs Instances with 'pred_ious' (IoU head on at test)")
        gt_boxes, gt_classes, _ = _gt(d)
        t = true_ious(inst, gt_boxes, gt_classes)
        cls = inst.cls_scores if inst.has("cls_scores") else inst.scores
        t_all.append(t)
        p_all.append(inst.pred_ious.cpu().float())
        c_all.append(cls.cpu().float())
    t = torch.cat(t_all).numpy() if t_all else np.zeros(0)
    p = torch.cat(p_all).numpy() if p_all else np.zeros(0)
    c = torch.cat(c_all).numpy() if c_all else np.zeros(0)
    sel = t >= min_true_iou
    t, p, c = t[sel], p[sel], c[sel]
    return IoUReport(
        num_detections=int(sel.sum()),
        min_true_iou=min_true_iou,
        spearman_pred_iou=_corr(spearmanr, p, t),
        pearson_pred_iou=_corr(pearsonr, p, t),
        spearman_cls_score=_corr(spearmanr, c, t),
        pearson_cls_score=_corr(pearsonr, c, t),
        true_iou=t.tolist(),
        pred_iou=p.tolist(),
        cls_score=c.tolist(),
    )


def save_iou_scatter(report: IoUReport, path: str) -> None:
    """Two panels: predicted IoU vs true IoU, class score vs true IoU."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True)
    panels = [
        (report.pred_iou, "predicted IoU", report.spearman_pred_iou, report.pearson_pred_iou),
        (
            report.cls_score,
            "classification score",
            report.spearman_cls_score,
            report.pearson_cls_score,
        ),
    ]
    for ax, (y, name, rho, r) in zip(axes, panels):
        ax.scatter(report.true_iou, y, s=4, alpha=0.4)
        ax.plot([0.5, 1.0], [0.5, 1.0], "k--", lw=0.8)
        ax.set_xlabel("true IoU with ground truth")
        ax.set_ylabel(name)
        ax.set_xlim(report.min_true_iou, 1.0)
        ax.set_ylim(0.0, 1.0)
        ax.set_title(f"{name}: Spearman {rho:.3f}, Pearson {r:.3f}")
    fig.suptitle(f"IoU-Net, {report.num_detections} validation detections")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
