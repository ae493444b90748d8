"""Python-loop references of the NMS family (docs/design.md#nms-family-rules,
docs/design.md#variance-voting-and-soft-nms, docs/design.md#iou-net-inference).

Each function follows the pseudo-code of docs/design.md literally, one selected box per loop
iteration, and evaluates IoUs in the same arithmetic order as the compiled kernels
(``csrc/common/box_utils.h``) so that both agree bit for bit on ``keep``.
"""

import math

import torch
from torch import Tensor

__all__ = [
    "batched_diou_nms",
    "batched_iou_guided_nms",
    "batched_kl_nms",
    "batched_soft_nms",
    "diou_nms",
    "iou_guided_nms",
    "kl_nms",
    "soft_nms",
    "var_voting",
]


def _area(boxes: Tensor) -> Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def _iou_one_to_many(box: Tensor, boxes: Tensor) -> Tensor:
    """IoU of one box (4,) with boxes (n, 4); 0 for disjoint boxes or an empty union."""
    iw = (torch.minimum(box[2], boxes[:, 2]) - torch.maximum(box[0], boxes[:, 0])).clamp(min=0)
    ih = (torch.minimum(box[3], boxes[:, 3]) - torch.maximum(box[1], boxes[:, 1])).clamp(min=0)
    inter = iw * ih
    union = _area(box[None])[0] + _area(boxes) - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(boxes.dtype).tiny), 0)


def _diou_penalty_one_to_many(box: Tensor, boxes: Tensor) -> Tensor:
    """DIoU penalty rho^2 / c^2 of one box (4,) with boxes (n, 4) on doubled centres,
    (dx^2 + dy^2) / (4 c^2), as ``box_diou_penalty``; 0 where c = 0."""
    dx = (box[0] + box[2]) - (boxes[:, 0] + boxes[:, 2])
    dy = (box[1] + box[3]) - (boxes[:, 1] + boxes[:, 3])
    cw = torch.maximum(box[2], boxes[:, 2]) - torch.minimum(box[0], boxes[:, 0])
    ch = torch.maximum(box[3], boxes[:, 3]) - torch.minimum(box[1], boxes[:, 1])
    rho2 = dx * dx + dy * dy
    c2 = 4 * (cw * cw + ch * ch)
    return torch.where(c2 > 0, rho2 / torch.where(c2 > 0, c2, 1), 0)


def _empty(boxes: Tensor) -> tuple[Tensor, Tensor]:
    return boxes.new_empty(0, dtype=torch.long), boxes.new_empty(0)


def soft_nms(
    boxes: Tensor,
    scores: Tensor,
    method: str = "gaussian",
    sigma: float = 0.5,
    iou_threshold: float = 0.3,
    score_threshold: float = 0.001,
) -> tuple[Tensor, Tensor]:
    alive = scores >= score_threshold
    cur = scores.clone()
    keep, kept = [], []
    while bool(alive.any()):
        m = int(torch.where(alive, cur, -math.inf).argmax())  # first max: smaller index
        keep.append(m)
        kept.append(cur[m])
        alive[m] = False
        iou = _iou_one_to_many(boxes[m], boxes)
        if method == "gaussian":
            decay = torch.exp(-(iou * iou) / sigma)
        elif method == "linear":
            decay = torch.where(iou > iou_threshold, 1 - iou, 1)
        else:  # hard
            decay = torch.where(iou > iou_threshold, 0, 1).to(cur.dtype)
        cur = torch.where(alive, cur * decay, cur)
        alive &= cur >= score_threshold
    if not keep:
        return _empty(boxes)
    return torch.tensor(keep, dtype=torch.long), torch.stack(kept)


def iou_guided_nms(
    boxes: Tensor,
    cls_scores: Tensor,
    pred_ious: Tensor,
    iou_threshold: float,
    multiply_cls: bool = False,
) -> tuple[Tensor, Tensor]:
    key = pred_ious * cls_scores if multiply_cls else pred_ious
    order = torch.sort(key, descending=True, stable=True).indices.tolist()
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep, out = [], []
    for i in order:
        if suppressed[i]:
            continue
        cluster = (_iou_one_to_many(boxes[i], boxes) > iou_threshold) & ~suppressed
        cluster[i] = True
        suppressed |= cluster
        keep.append(i)
        out.append(cls_scores[cluster].max())
    if not keep:
        return _empty(boxes)
    return torch.tensor(keep, dtype=torch.long), torch.stack(out)


def diou_nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS by decreasing score (stable) with the overlap IoU - rho^2 / c^2."""
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in order:
        if suppressed[i]:
            continue
        overlap = _iou_one_to_many(boxes[i], boxes) - _diou_penalty_one_to_many(boxes[i], boxes)
        suppressed |= overlap > iou_threshold
        suppressed[i] = True
        keep.append(i)
    return torch.tensor(keep, dtype=torch.long)


def var_voting(
    kept_boxes: Tensor,
    candidate_boxes: Tensor,
    candidate_vars: Tensor,
    sigma_t: float = 0.02,
    iou_threshold: float = 0.0,
) -> Tensor:
    out = kept_boxes.clone()
    for m in range(kept_boxes.shape[0]):
        iou = _iou_one_to_many(kept_boxes[m], candidate_boxes)
        voters = iou > iou_threshold
        if bool(voters.any()):
            o = iou[voters, None]
            log_w = -((1 - o) * (1 - o)) / sigma_t - candidate_vars[voters].log()
            out[m] = _log_domain_mean(log_w, candidate_boxes[voters])
    return out


def _log_domain_mean(log_w: Tensor, values: Tensor) -> Tensor:
    """Per column, sum(w * v) / sum(w) with w = exp(log_w), without overflow."""
    e = torch.exp(log_w - log_w.max(dim=0).values)
    return (e * values).sum(dim=0) / e.sum(dim=0)


def kl_nms(
    boxes: Tensor,
    scores: Tensor,
    log_vars: Tensor | None,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.001,
    sigma_t: float = 0.02,
    soft: bool = False,
    soft_sigma: float = 0.5,
    vote_iou_threshold: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    alive = scores >= score_threshold
    cur = scores.clone()
    keep, voted, kept = [], [], []
    while bool(alive.any()):
        m = int(torch.where(alive, cur, -math.inf).argmax())
        keep.append(m)
        kept.append(cur[m])
        alive[m] = False
        iou = _iou_one_to_many(boxes[m], boxes)  # the un-voted box of m
        if log_vars is None:
            voted.append(boxes[m])
        else:
            voters = alive & (iou > vote_iou_threshold)
            voters[m] = True
            log_p = -((1 - iou) * (1 - iou)) / sigma_t
            log_p[m] = 0  # p_m = 1 even when m has zero area (IoU with itself 0)
            log_w = log_p[voters, None] - log_vars[voters]
            voted.append(_log_domain_mean(log_w, boxes[voters]))
        if soft:
            cur = torch.where(alive, cur * torch.exp(-(iou * iou) / soft_sigma), cur)
        else:
            alive &= ~(iou > iou_threshold)
        alive &= cur >= score_threshold
    if not keep:
        return boxes.new_empty(0, dtype=torch.long), boxes.new_empty(0, 4), boxes.new_empty(0)
    return torch.tensor(keep, dtype=torch.long), torch.stack(voted), torch.stack(kept)


def _per_class(fn, idxs: Tensor, merge_key: Tensor | None, *per_box: Tensor | None, **kwargs):
    """Run fn on every class (ascending id) and map keep back to input indices. The classes are
    merged by decreasing output score (stable), or by decreasing merge_key[keep] with ties to the
    smaller index when merge_key is given."""
    outs = []
    for c in torch.unique(idxs).tolist():
        sel = torch.nonzero(idxs == c).flatten()
        res = fn(*(None if t is None else t[sel] for t in per_box), **kwargs)
        outs.append((sel[res[0]],) + tuple(res[1:]))
    if not outs:
        return fn(*per_box, **kwargs)
    cat = [torch.cat(parts) for parts in zip(*outs)]
    if merge_key is None:
        order = torch.sort(cat[-1], descending=True, stable=True).indices
    else:
        asc = torch.argsort(cat[0])
        order = asc[torch.sort(merge_key[cat[0][asc]], descending=True, stable=True).indices]
    return tuple(t[order] for t in cat)


def batched_soft_nms(
    boxes: Tensor, scores: Tensor, idxs: Tensor, **kwargs
) -> tuple[Tensor, Tensor]:
    return _per_class(soft_nms, idxs, None, boxes, scores, **kwargs)


def batched_kl_nms(
    boxes: Tensor, scores: Tensor, log_vars: Tensor | None, idxs: Tensor, **kwargs
) -> tuple[Tensor, Tensor, Tensor]:
    return _per_class(kl_nms, idxs, None, boxes, scores, log_vars, **kwargs)


def batched_iou_guided_nms(
    boxes: Tensor,
    cls_scores: Tensor,
    pred_ious: Tensor,
    idxs: Tensor,
    iou_threshold: float,
    multiply_cls: bool = False,
) -> tuple[Tensor, Tensor]:
    return _per_class(
        iou_guided_nms,
        idxs,
        pred_ious * cls_scores if multiply_cls else pred_ious,
        boxes,
        cls_scores,
        pred_ious,
        iou_threshold=iou_threshold,
        multiply_cls=multiply_cls,
    )


def batched_diou_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """diou_nms per class, merged by decreasing score with ties to the smaller index."""
    keep = [
        sel[diou_nms(boxes[sel], scores[sel], iou_threshold)]
        for sel in (torch.nonzero(idxs == c).flatten() for c in torch.unique(idxs).tolist())
    ]
    keep = torch.cat(keep).sort().values if keep else torch.zeros(0, dtype=torch.long)
    return keep[torch.sort(scores[keep], descending=True, stable=True).indices]
