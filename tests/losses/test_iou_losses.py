"""iou_loss: values and gradients against closed forms (docs/design.md#iou-loss-definitions),
degenerate inputs, property tests (finite, in range, scale/translation invariant); DIoU / CIoU /
EIoU against hand values, detectron2 and a scalar reference."""

import math

import pytest
import torch
from detectron2.layers import ciou_loss as d2_ciou_loss
from detectron2.layers import diou_loss as d2_diou_loss
from fvcore.nn import giou_loss as fvcore_giou_loss
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.ops import box_iou, generalized_box_iou

from d2_boxunc.losses import IOU_LOSS_MODES, iou_loss

F64 = torch.float64
MAX_LOSS = {
    "iou": 1.0,
    "giou": 2.0,
    "ln_iou": -math.log(1e-7),
    "diou": 2.0,
    "ciou": 3.0,
    "eiou": 4.0,
}
AREA_MODES = ("iou", "ln_iou", "giou")  # functions of areas only
DISTANCE_MODES = ("diou", "ciou", "eiou")
assert set(IOU_LOSS_MODES) == set(AREA_MODES + DISTANCE_MODES)


def random_boxes(n, generator, dtype=F64, scale=100.0):
    xy = torch.rand(n, 2, generator=generator, dtype=dtype) * scale
    wh = torch.rand(n, 2, generator=generator, dtype=dtype) * scale / 2 + 1.0
    return torch.cat([xy, xy + wh], dim=1)


def test_hand_computed_values():
    pred = torch.tensor(
        [[0.0, 0.0, 2.0, 2.0], [3.0, 0.0, 4.0, 1.0], [0.0, 0.0, 4.0, 4.0]], dtype=F64
    )
    gt = torch.tensor([[1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 4.0, 4.0]], dtype=F64)
    # row 0: I = 1, U = 7, C = 9; row 1: disjoint, U = 2, C = 4; row 2: identical
    iou = torch.tensor([1 / 7, 0.0, 1.0], dtype=F64)
    giou = iou - torch.tensor([2 / 9, 2 / 4, 0.0], dtype=F64)
    opts = dict(rtol=0, atol=1e-7)
    torch.testing.assert_close(iou_loss(pred, gt, "iou"), 1 - iou, **opts)
    torch.testing.assert_close(iou_loss(pred, gt, "giou"), 1 - giou, **opts)
    expected_ln = torch.tensor([math.log(7), -math.log(1e-7), 0.0], dtype=F64)
    torch.testing.assert_close(iou_loss(pred, gt, "ln_iou"), expected_ln, **opts)


@pytest.mark.parametrize("mode", AREA_MODES)
def test_random_boxes_match_torchvision_and_fvcore(mode):
    g = torch.Generator().manual_seed(1)
    pred, gt = random_boxes(500, g), random_boxes(500, g)
    iou = box_iou(pred, gt).diagonal()
    expected = {
        "iou": 1 - iou,
        "ln_iou": -torch.log(iou.clamp(min=1e-7)),
        "giou": 1 - generalized_box_iou(pred, gt).diagonal(),
    }[mode]
    torch.testing.assert_close(iou_loss(pred, gt, mode), expected, rtol=1e-6, atol=1e-6)
    if mode == "giou":
        torch.testing.assert_close(
            iou_loss(pred.float(), gt.float(), mode, reduction="sum"),
            fvcore_giou_loss(pred.float(), gt.float(), reduction="sum"),
            rtol=1e-5,
            atol=1e-4,
        )


def test_gradients_match_closed_form():
    # pred (0, 0, a, b) inside gt (0, 0, 2, 2): IoU = ab/4 = GIoU
    a, b = 1.5, 0.5
    gt = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=F64)
    for mode, expected in [
        ("iou", [0.0, 0.0, -b / 4, -a / 4]),
        ("giou", [0.0, 0.0, -b / 4, -a / 4]),
        ("ln_iou", [0.0, 0.0, -1 / a, -1 / b]),
    ]:
        pred = torch.tensor([[0.0, 0.0, a, b]], dtype=F64, requires_grad=True)
        iou_loss(pred, gt, mode, eps=1e-12).sum().backward()
        # x1, y1 tie with the gt: the gradient of min/max is split, hence the extra terms
        torch.testing.assert_close(pred.grad[0, 2:], torch.tensor(expected[2:], dtype=F64))

    # disjoint: pred (3, 0, 4, 1), gt (0, 0, 1, 1): L_GIoU = 2 - U/C with U = 1 + w_p, C = px2
    pred = torch.tensor([[3.0, 0.0, 4.0, 1.0]], dtype=F64, requires_grad=True)
    gt = torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=F64)
    iou_loss(pred, gt, "giou", eps=1e-12).sum().backward()
    torch.testing.assert_close(pred.grad[0, [0, 2]], torch.tensor([0.25, -0.125], dtype=F64))
    pred.grad = None
    iou_loss(pred, gt, "iou").sum().backward()  # no overlap: the IoU loss has no gradient
    assert torch.count_nonzero(pred.grad) == 0


@pytest.mark.parametrize("mode", [m for m in IOU_LOSS_MODES if m != "ciou"])
def test_gradcheck_on_generic_boxes(mode):
    g = torch.Generator().manual_seed(2)
    pred = random_boxes(8, g).requires_grad_()
    gt = random_boxes(8, g)
    assert torch.autograd.gradcheck(lambda p: iou_loss(p, gt, mode), (pred,))
    if mode in DISTANCE_MODES:  # symmetric in its use of the target: check that gradient too
        assert torch.autograd.gradcheck(
            lambda t: iou_loss(pred.detach(), t, mode), (gt.clone().requires_grad_(),)
        )


def aspect_v(boxes, gt):
    """CIoU's v = 4 / pi^2 * (atan(w_g / h_g) - atan(w / h))^2, on valid boxes."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    wg, hg = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    return 4 / math.pi**2 * (torch.atan(wg / hg) - torch.atan(w / h)) ** 2


def test_gradcheck_ciou_with_alpha_held_constant():
    # CIoU's alpha is a constant in the backward pass (paper, detectron2), so plain gradcheck
    # (finite differences move alpha too) does not apply; instead: 1) gradcheck the function with
    # alpha frozen at the evaluation point, 2) CIoU's autograd gradient equals that function's.
    g = torch.Generator().manual_seed(2)
    pred = random_boxes(8, g).requires_grad_()
    gt = random_boxes(8, g)
    with torch.no_grad():
        v0 = aspect_v(pred, gt)
        alpha0 = v0 / (iou_loss(pred, gt, "iou") + v0 + 1e-7)
    assert (alpha0 > 1e-3).any()  # the frozen term is not vacuous

    def frozen(p):
        return iou_loss(p, gt, "diou") + alpha0 * aspect_v(p, gt)

    assert torch.autograd.gradcheck(frozen, (pred,))
    (grad_ciou,) = torch.autograd.grad(iou_loss(pred, gt, "ciou").sum(), pred)
    (grad_frozen,) = torch.autograd.grad(frozen(pred).sum(), pred)
    torch.testing.assert_close(grad_ciou, grad_frozen, rtol=1e-6, atol=1e-9)
    # and the values agree (atan2(w, h + eps) vs atan(w / h): O(eps / h))
    torch.testing.assert_close(iou_loss(pred, gt, "ciou"), frozen(pred), rtol=0, atol=1e-8)


@pytest.mark.parametrize("mode", IOU_LOSS_MODES)
def test_inverted_prediction_is_reordered_not_collapsed(mode):
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    ordered = torch.tensor([[2.0, 3.0, 8.0, 9.0]], requires_grad=True)
    inverted = torch.tensor([[8.0, 9.0, 2.0, 3.0]], requires_grad=True)
    lo, li = iou_loss(ordered, gt, mode), iou_loss(inverted, gt, mode)
    torch.testing.assert_close(li, lo)
    assert lo.item() > 0.1  # the GIoU repo's x2 = max(x1, x2) would give a zero-width box instead
    (lo + li).sum().backward()
    # swapping the corners swaps the gradients
    torch.testing.assert_close(inverted.grad, ordered.grad[:, [2, 3, 0, 1]])


DEGENERATE = [
    ([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]),  # two points at the same place
    ([5.0, 5.0, 5.0, 9.0], [0.0, 0.0, 10.0, 10.0]),  # zero-width prediction
    ([5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0]),
    ([1.0, 1.0, 4.0, 4.0], [1.0, 1.0, 4.0, 4.0]),  # identical
    ([4.0, 4.0, 1.0, 1.0], [1.0, 1.0, 4.0, 4.0]),  # identical once re-ordered
    ([0.0, 0.0, 10.0, 0.0], [0.0, 0.0, 10.0, 0.0]),  # zero-height, identical
    ([-3e38, -3e38, 3e38, 3e38], [0.0, 0.0, 1.0, 1.0]),  # near the float32 maximum
    ([1e30, 1e30, 2e30, 2e30], [1.5e30, 1.5e30, 2.5e30, 2.5e30]),
    ([1e-30, 1e-30, 2e-30, 2e-30], [0.0, 0.0, 1e-30, 1e-30]),  # tiny
    ([0.0, 0.0, 1e9, 1e9], [0.0, 0.0, 1e-9, 1e-9]),
]


@pytest.mark.parametrize("mode", IOU_LOSS_MODES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, F64])
def test_degenerate_boxes_give_finite_values_and_gradients(mode, dtype):
    boxes = [(p, g) for p, g in DEGENERATE if dtype != torch.float16 or max(map(abs, p + g)) < 6e4]
    pred = torch.tensor([p for p, _ in boxes], dtype=dtype, requires_grad=True)
    gt = torch.tensor([g for _, g in boxes], dtype=dtype)
    loss = iou_loss(pred, gt, mode)
    assert loss.dtype == (F64 if dtype == F64 else torch.float32)
    assert torch.isfinite(loss).all(), loss
    assert (loss >= 0).all() and (loss <= MAX_LOSS[mode] + 1e-5).all()
    loss.sum().backward()
    assert torch.isfinite(pred.grad).all(), pred.grad


def test_identical_and_scaled_huge_boxes():
    box = torch.tensor([[1.0, 2.0, 30.0, 40.0]])
    for mode in IOU_LOSS_MODES:
        assert iou_loss(box, box, mode).item() == pytest.approx(0.0, abs=1e-6)
    # the detached rescaling of huge pairs is exact: same loss as the same pair at pixel scale
    small_p, small_g = torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    for mode in IOU_LOSS_MODES:
        torch.testing.assert_close(
            iou_loss(small_p * 1e35, small_g * 1e35, mode), iou_loss(small_p, small_g, mode)
        )


def test_reductions_and_empty_input():
    g = torch.Generator().manual_seed(3)
    pred, gt = random_boxes(10, g), random_boxes(10, g)
    per_box = iou_loss(pred, gt, "giou")
    assert per_box.shape == (10,)
    torch.testing.assert_close(iou_loss(pred, gt, "giou", reduction="sum"), per_box.sum())
    torch.testing.assert_close(iou_loss(pred, gt, "giou", reduction="mean"), per_box.mean())
    # batched leading dimensions
    assert iou_loss(pred.view(2, 5, 4), gt.view(2, 5, 4)).shape == (2, 5)
    empty = torch.zeros(0, 4, requires_grad=True)
    assert iou_loss(empty, empty.detach()).shape == (0,)
    for reduction in ("sum", "mean"):
        out = iou_loss(empty, empty.detach(), reduction=reduction)
        assert out.item() == 0.0 and out.requires_grad


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(pred=torch.zeros(3, 4), target=torch.zeros(2, 4)), "same shape"),
        (dict(pred=torch.zeros(3, 5), target=torch.zeros(3, 5)), r"\(\.\.\., 4\)"),
        (dict(mode="siou"), "mode must be one of"),
        (dict(reduction="avg"), "reduction must be one of"),
        (dict(eps=0.0), "eps must be positive"),
        (dict(pred=[[0, 0, 1, 1]]), "must be tensors"),
    ],
)
def test_bad_input_raises_value_error(kwargs, message):
    args = dict(pred=torch.zeros(3, 4), target=torch.zeros(3, 4))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        iou_loss(**args)


# ---- DIoU / CIoU / EIoU ----------------------------------------------------------------------
def test_distance_modes_hand_computed_values():
    pred = torch.tensor(
        [
            [0.0, 0.0, 2.0, 2.0],
            [3.0, 0.0, 4.0, 1.0],
            [0.0, 0.0, 4.0, 4.0],
            [0.0, 0.0, 4.0, 2.0],
            [1.0, 1.0, 3.0, 3.0],
        ],
        dtype=F64,
    )
    gt = torch.tensor(
        [
            [1.0, 1.0, 3.0, 3.0],
            [0.0, 0.0, 1.0, 1.0],
            [0.0, 0.0, 4.0, 4.0],
            [0.0, 0.0, 2.0, 4.0],
            [0.0, 0.0, 4.0, 4.0],
        ],
        dtype=F64,
    )
    # row 0: IoU 1/7, centres (1, 1) / (2, 2): rho^2 = 2, enclosing 3 x 3: c^2 = 18, same shape
    # row 1: disjoint, rho^2 = 9, enclosing 4 x 1: c^2 = 17, same shape
    # row 2: identical
    # row 3: 4 x 2 vs 2 x 4: I = 4, U = 12, rho^2 = 2, enclosing 4 x 4: c^2 = 32, w/h errors 2/4
    # row 4: 2 x 2 centred in 4 x 4: IoU 1/4, rho = 0 (DIoU = IoU loss), w/h errors 2/4
    one_minus_iou = torch.tensor([6 / 7, 1.0, 0.0, 2 / 3, 3 / 4], dtype=F64)
    diou = one_minus_iou + torch.tensor([2 / 18, 9 / 17, 0.0, 2 / 32, 0.0], dtype=F64)
    v3 = 4 / math.pi**2 * (math.atan(2 / 4) - math.atan(4 / 2)) ** 2
    ciou = diou + torch.tensor([0.0, 0.0, 0.0, v3 * v3 / (2 / 3 + v3), 0.0], dtype=F64)
    eiou = diou + torch.tensor([0.0, 0.0, 0.0, 4 / 16 + 4 / 16, 4 / 16 + 4 / 16], dtype=F64)
    opts = dict(rtol=0, atol=1e-7)
    torch.testing.assert_close(iou_loss(pred, gt, "diou"), diou, **opts)
    torch.testing.assert_close(iou_loss(pred, gt, "ciou"), ciou, **opts)
    torch.testing.assert_close(iou_loss(pred, gt, "eiou"), eiou, **opts)
    # GIoU and DIoU differ on row 1 (GIoU: 1 - 0 + 2/4) and agree on row 4 (gt = enclosing box)
    assert iou_loss(pred, gt, "giou")[1].item() == pytest.approx(1.5)
    assert iou_loss(pred, gt, "giou")[4].item() == pytest.approx(0.75)


def scalar_reference(p, g, mode):
    """The paper formulas, one pair of valid boxes at a time in Python floats (no eps)."""
    iw = max(0.0, min(p[2], g[2]) - max(p[0], g[0]))
    ih = max(0.0, min(p[3], g[3]) - max(p[1], g[1]))
    w, h, wg, hg = p[2] - p[0], p[3] - p[1], g[2] - g[0], g[3] - g[1]
    iou = iw * ih / (w * h + wg * hg - iw * ih)
    cw = max(p[2], g[2]) - min(p[0], g[0])
    ch = max(p[3], g[3]) - min(p[1], g[1])
    rho2 = ((p[0] + p[2]) / 2 - (g[0] + g[2]) / 2) ** 2 + (
        (p[1] + p[3]) / 2 - (g[1] + g[3]) / 2
    ) ** 2
    loss = 1 - iou + rho2 / (cw**2 + ch**2)
    if mode == "ciou":
        v = 4 / math.pi**2 * (math.atan(wg / hg) - math.atan(w / h)) ** 2
        loss += v * v / (1 - iou + v)
    elif mode == "eiou":
        loss += (w - wg) ** 2 / cw**2 + (h - hg) ** 2 / ch**2
    return loss


@pytest.mark.parametrize("mode", DISTANCE_MODES)
def test_random_boxes_match_scalar_reference(mode):
    g = torch.Generator().manual_seed(4)
    pred, gt = random_boxes(300, g), random_boxes(300, g)
    expected = torch.tensor(
        [scalar_reference(p, t, mode) for p, t in zip(pred.tolist(), gt.tolist())], dtype=F64
    )
    torch.testing.assert_close(iou_loss(pred, gt, mode), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode, d2_loss", [("diou", d2_diou_loss), ("ciou", d2_ciou_loss)])
def test_diou_ciou_match_detectron2(mode, d2_loss):
    # same eps placement as detectron2 (union, diagonal, alpha); only its atan(w / h) becomes our
    # atan2(w, h + eps), an O(eps / h) change on valid boxes
    g = torch.Generator().manual_seed(5)
    pred, gt = random_boxes(500, g), random_boxes(500, g)
    pred[:50] = gt[:50] + torch.rand(50, 4, generator=g, dtype=F64) * 0.8 - 0.4  # overlapping
    ours, ref = pred.clone().requires_grad_(), pred.clone().requires_grad_()
    a, b = iou_loss(ours, gt, mode), d2_loss(ref, gt)
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)
    a.sum().backward()
    b.sum().backward()
    torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-6, atol=1e-8)
    for reduction in ("sum", "mean"):  # float32, and the reductions agree
        torch.testing.assert_close(
            iou_loss(pred.float(), gt.float(), mode, reduction=reduction),
            d2_loss(pred.float(), gt.float(), reduction=reduction),
            rtol=1e-5,
            atol=1e-5,
        )


def test_ciou_alpha_gets_no_gradient():
    # pred 4 x 2 vs gt 2 x 4, no corner shared: grad(CIoU) - grad(DIoU) = alpha * dv/dp exactly
    pred = torch.tensor([[0.5, 0.25, 4.5, 2.25]], dtype=F64, requires_grad=True)
    gt = torch.tensor([[0.0, 0.0, 2.0, 4.0]], dtype=F64)
    (g_ciou,) = torch.autograd.grad(iou_loss(pred, gt, "ciou", eps=1e-12).sum(), pred)
    (g_diou,) = torch.autograd.grad(iou_loss(pred, gt, "diou", eps=1e-12).sum(), pred)
    w, h = 4.0, 2.0
    iou = (1.5 * 2.0) / (8 + 8 - 3.0)
    diff = math.atan(2 / 4) - math.atan(w / h)  # atan(w_g / h_g) - atan(w / h)
    v = 4 / math.pi**2 * diff**2
    alpha = v / (1 - iou + v)
    dv_dw = -2 * 4 / math.pi**2 * diff * h / (w * w + h * h)
    dv_dh = 2 * 4 / math.pi**2 * diff * w / (w * w + h * h)
    expected = alpha * torch.tensor([-dv_dw, -dv_dh, dv_dw, dv_dh], dtype=F64)
    torch.testing.assert_close(g_ciou[0] - g_diou[0], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode", IOU_LOSS_MODES)
def test_batch_loss_equals_per_row_losses(mode):
    g = torch.Generator().manual_seed(6)
    pred, gt = random_boxes(24, g, dtype=torch.float32), random_boxes(24, g, dtype=torch.float32)
    # degenerate, inverted and huge rows in the same batch (the huge-pair rescaling is per pair)
    pred[:4] = torch.tensor(
        [[5.0, 5.0, 5.0, 9.0], [8.0, 9.0, 2.0, 3.0], [1e30, 1e30, 2e30, 2e30], [0.0, 0.0, 0.0, 0.0]]
    )
    batch = iou_loss(pred, gt, mode)
    rows = torch.cat([iou_loss(pred[i : i + 1], gt[i : i + 1], mode) for i in range(24)])
    torch.testing.assert_close(batch, rows, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(
        iou_loss(pred.view(2, 3, 4, 4), gt.view(2, 3, 4, 4), mode), batch.view(2, 3, 4)
    )
    torch.testing.assert_close(iou_loss(pred[5], gt[5], mode), batch[5])  # a single (4,) box
    torch.testing.assert_close(iou_loss(pred, gt, mode, reduction="sum"), batch.sum())


# ---- property tests --------------------------------------------------------------------------
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)
box32 = st.lists(finite32, min_size=4, max_size=4)


@settings(max_examples=150, deadline=None)
@given(pred=box32, gt=box32, mode=st.sampled_from(IOU_LOSS_MODES))
def test_any_finite_input_gives_finite_in_range_loss_and_gradient(pred, gt, mode):
    p = torch.tensor([pred], dtype=torch.float32, requires_grad=True)
    loss = iou_loss(p, torch.tensor([gt], dtype=torch.float32), mode)
    assert torch.isfinite(loss).all()
    assert 0.0 <= loss.item() <= MAX_LOSS[mode] + 1e-5
    loss.sum().backward()
    assert torch.isfinite(p.grad).all()


coord = st.floats(-500.0, 500.0)
side = st.floats(1.0, 300.0)


@st.composite
def valid_box(draw):
    x, y = draw(coord), draw(coord)
    return [x, y, x + draw(side), y + draw(side)]


@settings(max_examples=100, deadline=None)
@given(
    pred=valid_box(),
    gt=valid_box(),
    sx=st.floats(0.1, 10.0),
    sy=st.floats(0.1, 10.0),
    tx=st.floats(-1e3, 1e3),
    ty=st.floats(-1e3, 1e3),
    mode=st.sampled_from(IOU_LOSS_MODES),
)
def test_scale_and_translation_invariance(pred, gt, sx, sy, tx, ty, mode):
    if mode in DISTANCE_MODES:  # centre distance / diagonal and aspect ratios: isotropic only
        sy = sx
    p, g = torch.tensor([pred], dtype=F64), torch.tensor([gt], dtype=F64)
    scale = torch.tensor([sx, sy, sx, sy], dtype=F64)
    shift = torch.tensor([tx, ty, tx, ty], dtype=F64)
    expected = iou_loss(p, g, mode)
    moved = iou_loss(p * scale + shift, g * scale + shift, mode)
    # eps = 1e-7 is absolute (square pixels); areas here are >= 0.01, so it moves values < 1e-4
    torch.testing.assert_close(moved, expected, rtol=0, atol=1e-4)
