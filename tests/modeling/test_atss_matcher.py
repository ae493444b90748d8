"""ATSSMatcher: hand-built cases, a slow loop reference on random inputs, input errors."""

import math

import pytest
import torch
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.structures import Boxes, pairwise_iou
from hypothesis import given, settings
from hypothesis import strategies as st

from d2_boxunc.modeling import ATSSMatcher
from d2_boxunc.modeling.matchers import _smallest_k

from ..conftest import cpu_and_cuda


def B(rows, dtype=torch.float32, device="cpu"):
    return Boxes(torch.tensor(rows, dtype=dtype, device=device).reshape(-1, 4))


def reference_atss(gt, levels, topk=9, margin=0.01):
    """Plain loops over GTs, levels and anchors, written straight from paper Alg. 1."""
    gt = gt.tolist()
    levels = [lv.tolist() for lv in levels]
    anchors = [a for lv in levels for a in lv]

    def ctr(b):
        return ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2)

    def iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    best = [(-1.0, None)] * len(anchors)  # (iou, gt index) of the winning GT per anchor
    for j, g in enumerate(gt):
        gc = ctr(g)
        cands = []
        offset = 0
        for lv in levels:
            d = [math.dist(gc, ctr(a)) for a in lv]
            order = sorted(range(len(lv)), key=lambda i: d[i])[:topk]
            cands += [offset + i for i in order]
            offset += len(lv)
        ious = [iou(g, anchors[i]) for i in cands]
        n = len(ious)
        if n == 0:
            continue
        mean = sum(ious) / n
        std = math.sqrt(sum((v - mean) ** 2 for v in ious) / (n - 1)) if n > 1 else 0.0
        for i, v in zip(cands, ious):
            cx, cy = ctr(anchors[i])
            inside = min(cx - g[0], cy - g[1], g[2] - cx, g[3] - cy) > margin
            if v >= mean + std and inside and v > best[i][0]:  # strict: ties keep the lower GT
                best[i] = (v, j)
    matched = [b[1] if b[1] is not None else 0 for b in best]
    labels = [1 if b[1] is not None else 0 for b in best]
    return torch.tensor(matched), torch.tensor(labels, dtype=torch.int8)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_anchor_equal_to_gt_is_positive_and_far_anchors_are_not(device):
    anchors = [
        B([[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30], [40, 40, 50, 50]], device=device)
    ]
    matched, labels = ATSSMatcher()(B([[0, 0, 10, 10]], device=device), anchors)
    assert labels.dtype == torch.int8 and matched.dtype == torch.int64
    assert labels.device.type == device
    assert labels.tolist() == [1, 0, 0, 0]
    assert matched.tolist() == [0, 0, 0, 0]


def test_high_iou_anchor_with_centre_outside_gt_is_negative():
    # GT is a thin horizontal strip; the anchor covers it (IoU 0.5) but its centre (10, 12) lies
    # below the strip. It is the only candidate, so the adaptive threshold is its own IoU.
    gt = B([[0, 0, 20, 12]])
    anchors = [B([[0, 0, 20, 24]])]
    matched, labels = ATSSMatcher(topk=9, center_margin=0.0)(gt, anchors)
    assert labels.tolist() == [0]
    # Same geometry with the centre inside: positive.
    matched, labels = ATSSMatcher(topk=9, center_margin=0.0)(B([[0, 0, 20, 13]]), anchors)
    assert labels.tolist() == [1]


def test_centre_margin():
    # Anchor centre 0.005 px inside the GT's left edge: inside for margin 0, outside for 0.01.
    gt = B([[0, 0, 10, 10]])
    anchors = [B([[-4.995, 0, 5.005, 10]])]
    assert ATSSMatcher(center_margin=0.0)(gt, anchors)[1].tolist() == [1]
    assert ATSSMatcher()(gt, anchors)[1].tolist() == [0]


def test_anchor_positive_for_two_gts_goes_to_the_higher_iou():
    anchors = [B([[0, 0, 10, 10]])]
    # Both GTs contain the anchor centre (5, 5); IoU with GT 0 is 100/144, with GT 1 is 100/121.
    gts = B([[-1, -1, 11, 11], [0, 0, 11, 11]])
    matched, labels = ATSSMatcher()(gts, anchors)
    assert labels.tolist() == [1] and matched.tolist() == [1]
    matched, labels = ATSSMatcher()(B([[0, 0, 11, 11], [-1, -1, 11, 11]]), anchors)
    assert labels.tolist() == [1] and matched.tolist() == [0]
    # Exact tie: the lower GT index wins, as argmax would.
    matched, labels = ATSSMatcher()(B([[0, 0, 10, 11], [0, 0, 11, 10]]), anchors)
    assert labels.tolist() == [1] and matched.tolist() == [0]


def test_degenerate_gt_gets_no_positive_and_half_precision_inputs_work():
    anchors = [B([[0, 0, 10, 10], [5, 5, 15, 15]])]
    for margin in (0.0, 0.01):
        _, labels = ATSSMatcher(center_margin=margin)(B([[5, 0, 5, 10]]), anchors)  # zero width
        assert labels.tolist() == [0, 0]
    # float16: both squared distances (2*340^2, 2*300^2) overflow to inf; the nearer anchor (the
    # second) must still be the single candidate.
    far = [torch.tensor([[0, 0, 20, 20], [600, 600, 700, 700]], dtype=torch.float16)]
    gt = torch.tensor([[0, 0, 700, 700]], dtype=torch.float16)
    matched, labels = ATSSMatcher(topk=1)(gt, far)
    assert labels.tolist() == [0, 1]


def test_no_gt_gives_all_background():
    anchors = [B([[0, 0, 10, 10], [5, 5, 15, 15]]), B([[0, 0, 20, 20]])]
    matched, labels = ATSSMatcher()(Boxes(torch.zeros(0, 4)), anchors)
    assert labels.tolist() == [0, 0, 0] and matched.tolist() == [0, 0, 0]
    assert labels.dtype == torch.int8 and matched.dtype == torch.int64


def test_topk_larger_than_levels_and_empty_level():
    # Level sizes 2, 0 and 1 with topk 9: every anchor is a candidate (3 candidates).
    anchors = [B([[0, 0, 10, 10], [100, 100, 110, 110]]), B([]), B([[0, 0, 20, 20]])]
    gt = B([[0, 0, 10, 10]])
    matched, labels = ATSSMatcher(topk=9)(gt, anchors)
    # IoUs (1, 0, 0.25): threshold 0.417 + 0.520 = 0.937, only the exact anchor passes.
    assert labels.tolist() == [1, 0, 0]
    expected = reference_atss(gt.tensor, [a.tensor for a in anchors], topk=9)
    assert labels.tolist() == expected[1].tolist()


def test_topk_selects_closest_centres_per_level():
    # topk=1: per level only the closest anchor can be positive even if another has a higher IoU.
    gt = B([[0, 0, 10, 10]])
    anchors = [B([[1, 1, 9, 9], [0, 0, 10, 11]])]  # centres (5,5) at 0, (5,5.5) at 0.5
    matched, labels = ATSSMatcher(topk=1)(gt, anchors)
    assert labels.tolist() == [1, 0]  # single candidate: std 0, threshold = its own IoU
    # topk=2: IoUs 0.64 and 100/110; threshold = mean + unbiased std = 0.775 + 0.190 > both.
    matched, labels = ATSSMatcher(topk=2)(gt, anchors)
    assert labels.tolist() == [0, 0]
    assert reference_atss(gt.tensor, [anchors[0].tensor], topk=2)[1].tolist() == [0, 0]


def random_case(g, num_gt, level_sizes, image=200.0):
    xy = torch.rand(num_gt, 2, generator=g, dtype=torch.float64) * image
    wh = torch.rand(num_gt, 2, generator=g, dtype=torch.float64) * 80 + 2
    gt = torch.cat([xy, xy + wh], 1)
    levels = []
    for n in level_sizes:
        c = torch.rand(n, 2, generator=g, dtype=torch.float64) * image
        s = torch.rand(n, 2, generator=g, dtype=torch.float64) * 60 + 4
        levels.append(torch.cat([c - s / 2, c + s / 2], 1))
    return gt, levels


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    num_gt=st.integers(0, 6),
    level_sizes=st.lists(st.integers(0, 30), min_size=1, max_size=4),
    topk=st.integers(1, 12),
)
def test_matches_loop_reference_on_random_inputs(seed, num_gt, level_sizes, topk):
    g = torch.Generator().manual_seed(seed)
    gt, levels = random_case(g, num_gt, level_sizes)
    # float64 tensors (Boxes would cast to float32) so the reference sees the same numbers.
    matched, labels = ATSSMatcher(topk=topk)(gt, levels)
    ref_matched, ref_labels = reference_atss(gt, levels, topk=topk)
    assert labels.tolist() == ref_labels.tolist()
    assert matched.tolist() == ref_matched.tolist()


@pytest.mark.parametrize("sizes", [[32.0], [32.0, 48.0], [32.0, 40.0, 56.0], [32.0, 32.0 * 2**0.5]])
def test_on_detectron2_anchor_grid(sizes):
    # 1-3 anchors per location share a centre, so the top-9 cut falls inside tied groups: the
    # matcher must break ties like the reference's stable sort (lower anchor index first).
    gen = DefaultAnchorGenerator(
        sizes=[[s * 2**i for s in sizes] for i in range(3)],
        aspect_ratios=[[1.0]],
        strides=[8, 16, 32],
        offset=0.5,
    )
    feats = [torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 8, 8)]
    # float64 tensors, not Boxes (which cast to float32), so the reference sees the same numbers.
    anchors = [a.tensor.double() for a in gen(feats)]
    g = torch.Generator().manual_seed(3)
    gt, _ = random_case(g, 5, [], image=150.0)
    gt = gt.round()  # integer GTs: GT centres on the half-pixel grid create distance ties too
    matched, labels = ATSSMatcher()(gt, anchors)
    assert labels.shape == (sum(len(a) for a in anchors),)
    fg = labels == 1
    # On a dense grid every (non-tiny) GT gets at least one positive, and positives overlap it.
    assert set(matched[fg].tolist()) == set(range(5))
    ious = pairwise_iou(Boxes(gt[matched[fg]]), Boxes(torch.cat(anchors)[fg]))
    assert (torch.diag(ious) > 0).all()
    ref = reference_atss(gt, anchors)
    assert labels.tolist() == ref[1].tolist() and matched.tolist() == ref[0].tolist()


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    rows=st.integers(1, 4),
    cols=st.integers(1, 40),
    k=st.integers(1, 40),
)
def test_smallest_k_breaks_ties_like_a_stable_sort(seed, rows, cols, k):
    k = min(k, cols)
    g = torch.Generator().manual_seed(seed)
    values = torch.randint(0, 4, (rows, cols), generator=g).float()  # many ties
    got = _smallest_k(values, k)
    expected = torch.sort(values, dim=1, stable=True).indices[:, :k].sort(dim=1).values
    assert torch.equal(got, expected)


@pytest.mark.needs_cuda
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(0)
    gt, levels = random_case(g, 20, [400, 100, 25])
    levels.append(levels[-1].clone())  # a level of anchors sharing centres pairwise: ties
    levels[-1][:, 2:] += 3.0
    levels[-1][:, :2] -= 3.0
    levels = [torch.cat([lv, lv + 0.0], 0) for lv in levels]  # duplicated anchors: exact ties
    cpu = ATSSMatcher()(gt, levels)
    cuda = ATSSMatcher()(gt.cuda(), [lv.cuda() for lv in levels])
    assert torch.equal(cpu[0], cuda[0].cpu()) and torch.equal(cpu[1], cuda[1].cpu())


def test_errors():
    m = ATSSMatcher()
    gt = B([[0, 0, 10, 10]])
    with pytest.raises(ValueError, match="empty"):
        m(gt, [])
    with pytest.raises(ValueError, match="list"):
        m(gt, B([[0, 0, 1, 1]]))
    with pytest.raises(ValueError, match=r"shape \(N, 4\)"):
        m(gt, [torch.zeros(3, 5)])
    with pytest.raises(ValueError, match="gt_boxes must have shape"):
        m(torch.zeros(4), [B([[0, 0, 1, 1]])])
    with pytest.raises(ValueError, match="gt_boxes contain NaN"):
        m(B([[0, 0, float("nan"), 10]]), [B([[0, 0, 1, 1]])])
    with pytest.raises(ValueError, match="anchors_per_level contain NaN"):
        m(gt, [B([[0, 0, 1, 1]]), B([[0, 0, float("inf"), 1]])])
    with pytest.raises(ValueError, match="floating"):
        m(gt, [torch.zeros(2, 4, dtype=torch.int64)])
    with pytest.raises(ValueError, match="all levels must match"):
        m(gt, [B([[0, 0, 1, 1]]).tensor, torch.ones(1, 4, dtype=torch.float64)])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="topk"):
            ATSSMatcher(topk=bad)
    with pytest.raises(ValueError, match="center_margin"):
        ATSSMatcher(center_margin=-1.0)
