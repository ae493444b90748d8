"""Compiled NMS-family ops against their Python-loop references and the exact conventions of
docs/design.md#nms-family-rules (strict IoU thresholds, inclusive score survival, ties to the
smaller index)."""

import pytest
import torch

from d2_boxunc import _extension
from d2_boxunc.layers import _reference as ref
from d2_boxunc.layers import (
    batched_iou_guided_nms,
    batched_kl_nms,
    batched_soft_nms,
    iou_guided_nms,
    kl_nms,
    soft_nms,
    var_voting,
)
from tests.conftest import cpu_and_cuda

SEEDS = range(9)
DTYPES = (torch.float32, torch.float64)


def clustered_boxes(n, seed, dtype=torch.float32, offset=0.0, quantum=None):
    """n boxes in a few clusters (realistic detector output) and uniform scores in [0, 1)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(max(n // 8, 1), 2, generator=g, dtype=torch.float64) * 300
    ctr = centres[torch.randint(0, len(centres), (n,), generator=g)]
    ctr = ctr + torch.randn(n, 2, generator=g, dtype=torch.float64) * 6
    wh = 10 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 50
    boxes = torch.cat([ctr - wh / 2, ctr + wh / 2], dim=1)
    if quantum is not None:  # binary-exact coordinates: shifting them is exact
        boxes = torch.round(boxes / quantum) * quantum
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    return (boxes + offset).to(dtype), scores.to(dtype), g


def assert_scores_close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------- op == reference on random sets


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["linear", "gaussian", "hard"])
def test_soft_nms_matches_reference(method, dtype):
    for seed in SEEDS:
        boxes, scores, _ = clustered_boxes(10 * seed, seed, dtype)
        kw = dict(method=method, sigma=0.5, iou_threshold=0.3, score_threshold=0.05)
        keep, out = soft_nms(boxes, scores, **kw)
        keep_ref, out_ref = ref.soft_nms(boxes, scores, **kw)
        assert torch.equal(keep, keep_ref), (seed, keep, keep_ref)
        assert_scores_close(out, out_ref)
        assert out.dtype == dtype and keep.dtype == torch.long


def wide_range_boxes(seed, dtype, n=300):
    """Widths from 0.5 to 400 px, quantised coordinates (boxes that touch exactly), 10 inverted
    boxes and scores with many ties: the cases for the grid pruning of the CPU kernels (which
    only visit the cells whose live boxes can overlap the selection). Odd seeds use 1500 boxes on
    a larger canvas, so that the grid has many cells and tiles."""
    g = torch.Generator().manual_seed(100 + seed)
    n, extent = (1500, 1600) if seed % 2 else (n, 400)
    x1 = torch.randint(0, extent, (n,), generator=g).double() / 2
    y1 = torch.randint(0, extent, (n,), generator=g).double() / 2
    narrow = 0.5 + torch.randint(0, 80, (n,), generator=g).double() / 2
    w = torch.where(torch.rand(n, generator=g) < 0.1, 400.0, narrow)
    h = 0.5 + torch.randint(0, 160, (n,), generator=g).double() / 2
    boxes = torch.stack([x1, y1, x1 + w, y1 + h], 1)
    boxes[:10, 2] = boxes[:10, 0] - 3
    scores = torch.randint(1, 40, (n,), generator=g).double() / 40
    log_vars = torch.randn(n, 4, generator=g, dtype=torch.float64) * 2
    return boxes.to(dtype), scores.to(dtype), log_vars.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["linear", "gaussian", "hard"])
def test_soft_nms_grid_pruning_misses_no_overlap(method, dtype):
    """soft_nms only rescans the grid cells whose live boxes can overlap the selection."""
    for seed in range(6):
        boxes, scores, _ = wide_range_boxes(seed, dtype)
        kw = dict(method=method, sigma=0.5, iou_threshold=0.3, score_threshold=0.01)
        keep, out = soft_nms(boxes, scores, **kw)
        keep_ref, out_ref = ref.soft_nms(boxes, scores, **kw)
        assert torch.equal(keep, keep_ref), seed
        assert_scores_close(out, out_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "soft,vote_iou_threshold", [(False, 0.0), (True, 0.0), (False, -1.0), (True, 0.3)]
)
def test_kl_nms_grid_pruning_misses_no_overlap(soft, vote_iou_threshold, dtype):
    """kl_nms prunes the same way, unless a negative vote threshold lets every box vote."""
    for seed in range(4):
        boxes, scores, log_vars = wide_range_boxes(seed, dtype)
        kw = dict(
            iou_threshold=0.5,
            score_threshold=0.01,
            sigma_t=0.02,
            soft=soft,
            vote_iou_threshold=vote_iou_threshold,
        )
        keep, voted, out = kl_nms(boxes, scores, log_vars, **kw)
        keep_ref, voted_ref, out_ref = ref.kl_nms(boxes, scores, log_vars, **kw)
        assert torch.equal(keep, keep_ref), seed
        assert_scores_close(out, out_ref)
        torch.testing.assert_close(voted, voted_ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("iou_threshold", [0.0, 0.5, -0.1])
def test_iou_guided_nms_grid_pruning_misses_no_overlap(iou_threshold, dtype):
    """iou_guided_nms visits only the grid cells that can overlap the kept box, unless a negative
    threshold suppresses every later box."""
    for seed in range(4):
        boxes, scores, _ = wide_range_boxes(seed, dtype)
        ious = scores.flip(0)
        keep, out = iou_guided_nms(boxes, scores, ious, iou_threshold, True)
        keep_ref, out_ref = ref.iou_guided_nms(boxes, scores, ious, iou_threshold, True)
        assert torch.equal(keep, keep_ref), seed
        assert torch.equal(out, out_ref)
        if iou_threshold < 0:
            assert len(keep) == 1 and out[0] == scores.max()


def degenerate_layouts(dtype, n=400):
    """Box sets whose centres span no area (all on one point, all on one line) or a huge range
    (a cluster of 1e-3-wide boxes and a few boxes a million pixels away, negative included):
    the grid's cell binning must stay exact when its extents are 0 or enormous."""
    g = torch.Generator().manual_seed(7)
    wh = 1 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 40
    point = torch.cat([50 - wh / 2, 50 + wh / 2], 1)
    xs = torch.randint(0, 300, (n,), generator=g).double()
    line = torch.stack([xs, 10 - wh[:, 1] / 2, xs + wh[:, 0], 10 + wh[:, 1] / 2], 1)
    ctr = torch.randn(n, 2, generator=g, dtype=torch.float64) * 2e-3
    ctr[:8] = torch.tensor([[1e6, 0], [-1e6, 5], [0, 1e6], [0, -1e6]]).double().repeat(2, 1)
    spread = torch.cat([ctr - 5e-4 * wh / 20, ctr + 5e-4 * wh / 20], 1)
    scores = torch.randint(1, 50, (n,), generator=g).double() / 50
    log_vars = torch.randn(n, 4, generator=g, dtype=torch.float64)
    return [(b.to(dtype), scores.to(dtype), log_vars.to(dtype)) for b in (point, line, spread)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_grid_handles_degenerate_layouts(dtype):
    for case, (boxes, scores, log_vars) in enumerate(degenerate_layouts(dtype)):
        keep, out = soft_nms(boxes, scores, "gaussian", score_threshold=0.01)
        keep_ref, out_ref = ref.soft_nms(boxes, scores, "gaussian", score_threshold=0.01)
        assert torch.equal(keep, keep_ref), case
        assert_scores_close(out, out_ref)
        kw = dict(soft=True, score_threshold=0.01)
        keep, voted, out = kl_nms(boxes, scores, log_vars, **kw)
        keep_ref, voted_ref, out_ref = ref.kl_nms(boxes, scores, log_vars, **kw)
        assert torch.equal(keep, keep_ref), case
        torch.testing.assert_close(voted, voted_ref, rtol=1e-5, atol=1e-7)
        ious = scores.flip(0)
        keep, out = iou_guided_nms(boxes, scores, ious, 0.3)
        keep_ref, out_ref = ref.iou_guided_nms(boxes, scores, ious, 0.3)
        assert torch.equal(keep, keep_ref), case
        assert torch.equal(out, out_ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("multiply_cls", [False, True])
def test_iou_guided_nms_matches_reference(multiply_cls, dtype):
    for seed in SEEDS:
        boxes, scores, g = clustered_boxes(12 * seed, seed, dtype)
        ious = torch.rand(len(boxes), generator=g, dtype=torch.float64).to(dtype)
        keep, out = iou_guided_nms(boxes, scores, ious, 0.5, multiply_cls)
        keep_ref, out_ref = ref.iou_guided_nms(boxes, scores, ious, 0.5, multiply_cls)
        assert torch.equal(keep, keep_ref)
        assert torch.equal(out, out_ref)  # a max of inputs: exact


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("vote", [False, True])
def test_kl_nms_matches_reference(vote, soft, dtype):
    for seed in SEEDS:
        boxes, scores, g = clustered_boxes(10 * seed, seed, dtype)
        log_vars = (torch.randn(len(boxes), 4, generator=g, dtype=torch.float64) * 2).to(dtype)
        log_vars = log_vars if vote else None
        kw = dict(iou_threshold=0.5, score_threshold=0.01, sigma_t=0.02, soft=soft)
        keep, voted, out = kl_nms(boxes, scores, log_vars, **kw)
        keep_ref, voted_ref, out_ref = ref.kl_nms(boxes, scores, log_vars, **kw)
        assert torch.equal(keep, keep_ref)
        assert_scores_close(out, out_ref)
        torch.testing.assert_close(voted, voted_ref, rtol=1e-5, atol=1e-4)
        if not vote:
            assert torch.equal(voted, boxes[keep])


@pytest.mark.parametrize("dtype", DTYPES)
def test_var_voting_matches_reference(dtype):
    for seed in SEEDS:
        boxes, _, g = clustered_boxes(8 * seed + 1, seed, dtype)
        variances = torch.exp(torch.randn(len(boxes), 4, generator=g, dtype=torch.float64) * 3)
        kept = boxes[: len(boxes) // 3 + 1]
        out = var_voting(kept, boxes, variances.to(dtype), sigma_t=0.02, iou_threshold=0.1)
        out_ref = ref.var_voting(kept, boxes, variances.to(dtype), sigma_t=0.02, iou_threshold=0.1)
        torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------------------- batched variants


def test_batched_variants_equal_per_class_runs_with_negative_coords():
    for seed in range(3):
        # coordinates on a 1/4 grid, so shifting them by -4096 is exact
        boxes, scores, g = clustered_boxes(120, seed, offset=-4096.0, quantum=0.25)
        assert (boxes < 0).all()
        idxs = torch.randint(0, 4, (len(boxes),), generator=g)
        ious = torch.rand(len(boxes), generator=g)
        log_vars = torch.randn(len(boxes), 4, generator=g)

        keep, out = batched_soft_nms(boxes, scores, idxs, method="linear")
        keep_ref, out_ref = ref.batched_soft_nms(boxes, scores, idxs, method="linear")
        assert torch.equal(keep, keep_ref)
        assert_scores_close(out, out_ref)
        assert (out[:-1] >= out[1:]).all()
        assert (idxs[keep] == idxs[keep_ref]).all()

        keep, out = batched_iou_guided_nms(boxes, scores, ious, idxs, 0.5, multiply_cls=True)
        keep_ref, out_ref = ref.batched_iou_guided_nms(boxes, scores, ious, idxs, 0.5, True)
        assert torch.equal(keep, keep_ref) and torch.equal(out, out_ref)
        key = (ious * scores)[keep]
        assert (key[:-1] >= key[1:]).all()

        keep, voted, out = batched_kl_nms(boxes, scores, log_vars, idxs, soft=True)
        keep_ref, voted_ref, out_ref = ref.batched_kl_nms(boxes, scores, log_vars, idxs, soft=True)
        assert torch.equal(keep, keep_ref)
        torch.testing.assert_close(voted, voted_ref, rtol=1e-5, atol=1e-3)

        # the same boxes shifted to positive coordinates give the same result
        shifted = batched_iou_guided_nms(boxes + 4096, scores, ious, idxs, 0.5, True)[0]
        assert torch.equal(shifted, batched_iou_guided_nms(boxes, scores, ious, idxs, 0.5, True)[0])


def test_batched_soft_nms_is_per_class_soft_nms():
    boxes, scores, g = clustered_boxes(90, 3)
    idxs = torch.randint(0, 3, (90,), generator=g)
    keep, out = batched_soft_nms(boxes, scores, idxs)
    for c in range(3):
        sel = torch.nonzero(idxs == c).flatten()
        k, s = soft_nms(boxes[sel], scores[sel])
        mine = idxs[keep] == c
        assert torch.equal(keep[mine], sel[k])
        assert torch.equal(out[mine], s)


def test_classes_never_interact():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8])
    idxs = torch.tensor([0, 1])
    assert batched_soft_nms(boxes, scores, idxs, method="hard")[0].tolist() == [0, 1]
    assert batched_iou_guided_nms(boxes, scores, scores, idxs, 0.5)[0].tolist() == [0, 1]
    assert batched_kl_nms(boxes, scores, None, idxs)[0].tolist() == [0, 1]
    assert soft_nms(boxes, scores, method="hard")[0].tolist() == [0]


# --------------------------------------------------------------------------- exact conventions

# IoU((0,0,2,1), (0,0,1,1)) = 1 / 2 exactly in binary arithmetic
HALF_IOU = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_iou_threshold_is_strict(dtype):
    boxes, scores = HALF_IOU.to(dtype), torch.tensor([0.75, 0.5], dtype=dtype)
    for thr, expected in ((0.5, [0, 1]), (0.4999, [0])):
        assert soft_nms(boxes, scores, "hard", iou_threshold=thr)[0].tolist() == expected
        assert iou_guided_nms(boxes, scores, scores, thr)[0].tolist() == expected
        assert kl_nms(boxes, scores, None, iou_threshold=thr)[0].tolist() == expected
    # linear decays only above the threshold
    assert soft_nms(boxes, scores, "linear", iou_threshold=0.5)[1].tolist() == [0.75, 0.5]
    assert soft_nms(boxes, scores, "linear", iou_threshold=0.25)[1][1] == scores[1] * 0.5
    # a candidate at IoU exactly vote_iou_threshold does not vote
    log_vars = torch.zeros(2, 4, dtype=dtype)
    voted = kl_nms(boxes, scores, log_vars, iou_threshold=0.9, vote_iou_threshold=0.5)[1]
    assert torch.equal(voted[0], boxes[0])
    voted = kl_nms(boxes, scores, log_vars, iou_threshold=0.9, vote_iou_threshold=0.49)[1]
    assert voted[0, 2] < 2


def test_score_threshold_is_inclusive_and_initial_scores_are_filtered():
    boxes = torch.tensor([[0.0, 0, 1, 1], [5, 5, 6, 6], [10, 10, 11, 11]])
    scores = torch.tensor([0.25, 0.5, 0.125])
    assert soft_nms(boxes, scores, score_threshold=0.25)[0].tolist() == [1, 0]
    assert kl_nms(boxes, scores, None, score_threshold=0.25)[0].tolist() == [1, 0]
    # decayed exactly to the threshold survives: linear 1 - IoU = 0.5 on a 0.5 score -> 0.25
    boxes = torch.cat([HALF_IOU, HALF_IOU + 10])
    scores = torch.tensor([0.75, 0.5, 0.1, 0.1])
    keep, out = soft_nms(boxes, scores, "linear", iou_threshold=0.3, score_threshold=0.25)
    assert keep.tolist() == [0, 1] and out.tolist() == [0.75, 0.25]


def test_ties_go_to_the_smaller_index():
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 3 + [[50.0, 50, 60, 60]])
    scores = torch.tensor([0.5, 0.7, 0.7, 0.7])
    assert soft_nms(boxes, scores, "hard")[0].tolist() == [1, 3]
    assert iou_guided_nms(boxes, scores, torch.full((4,), 0.8), 0.5)[0].tolist() == [0, 3]
    assert kl_nms(boxes, scores, None)[0].tolist() == [1, 3]
    # cluster score is the max cls score of the cluster
    assert iou_guided_nms(boxes, scores, torch.full((4,), 0.8), 0.5)[1].tolist() == [
        pytest.approx(0.7),
        pytest.approx(0.7),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_single_and_all_below_threshold(dtype):
    empty = torch.zeros(0, 4, dtype=dtype)
    one = torch.tensor([[1.0, 2, 3, 4]], dtype=dtype)
    for boxes, scores, n_keep in (
        (empty, torch.zeros(0, dtype=dtype), 0),
        (one, torch.tensor([0.5], dtype=dtype), 1),
        (one, torch.tensor([1e-4], dtype=dtype), 0),
    ):
        keep, out = soft_nms(boxes, scores)
        assert keep.dtype == torch.long and out.dtype == dtype and len(keep) == n_keep
        keep, out = iou_guided_nms(boxes, scores, scores, 0.5)  # no score threshold
        assert keep.dtype == torch.long and out.dtype == dtype and len(keep) == len(boxes)
        keep, voted, out = kl_nms(boxes, scores, torch.zeros_like(boxes))
        assert keep.shape == (n_keep,) and voted.shape == (n_keep, 4) and out.dtype == dtype
        assert torch.equal(voted, boxes[keep])  # a lone box votes only for itself
    assert var_voting(empty, empty, empty).shape == (0, 4)
    assert torch.equal(var_voting(one, empty, empty), one)  # no voter: unchanged


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_variances_give_the_confident_box(dtype):
    right = torch.tensor([10.0, 10, 20, 20], dtype=dtype)
    boxes = torch.stack([right + 1, right, right - 1, right + torch.tensor([0, 0, 2, 2.0])])
    variances = torch.tensor([1e30, 1e-30, 1e30, 1e30], dtype=dtype)[:, None].expand(4, 4)
    out = var_voting(boxes[:1], boxes, variances.contiguous())
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[0], right)
    scores = torch.tensor([0.9, 0.5, 0.4, 0.3], dtype=dtype)
    keep, voted, _ = kl_nms(boxes, scores, variances.log().contiguous(), iou_threshold=0.3)
    assert keep.tolist() == [0] and torch.isfinite(voted).all()
    torch.testing.assert_close(voted[0], right)


def test_outputs_do_not_track_gradients():
    boxes, scores, _ = clustered_boxes(30, 0)
    boxes.requires_grad_(True)
    keep, out = soft_nms(boxes, scores.requires_grad_(True))
    assert not out.requires_grad
    assert not var_voting(boxes, boxes, torch.ones(30, 4)).requires_grad


# --------------------------------------------------------------------------------------- errors


def test_validation_errors():
    boxes, scores, _ = clustered_boxes(5, 0)
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\)"):
        soft_nms(boxes[:, :3], scores)
    with pytest.raises(ValueError, match=r"scores must have shape \(5,\)"):
        soft_nms(boxes, scores[:4])
    with pytest.raises(ValueError, match="method must be one of"):
        soft_nms(boxes, scores, method="cubic")
    with pytest.raises(ValueError, match="boxes must be finite"):
        iou_guided_nms(
            boxes.clone().index_fill_(0, torch.tensor([2]), float("nan")), scores, scores, 0.5
        )
    with pytest.raises(ValueError, match="scores must be finite"):
        kl_nms(boxes, scores.clone().fill_(float("inf")), None)
    with pytest.raises(ValueError, match="candidate_vars must be positive"):
        var_voting(boxes, boxes, -torch.ones(5, 4))
    with pytest.raises(TypeError, match="scores must have the dtype of boxes"):
        soft_nms(boxes, scores.double())
    with pytest.raises(TypeError, match="boxes must be float32 or float64"):
        soft_nms(boxes.long(), scores)
    with pytest.raises(ValueError, match="pred_ious must be on the device of boxes"):
        iou_guided_nms(boxes, scores, scores.to("meta"), 0.5)
    with pytest.raises(ValueError, match=r"log_vars must have shape \(5, 4\)"):
        kl_nms(boxes, scores, torch.zeros(5, 2))
    with pytest.raises(TypeError, match="idxs must be an integer Tensor"):
        batched_soft_nms(boxes, scores, torch.zeros(5))
    with pytest.raises(ValueError, match="sigma_t must be > 0"):
        var_voting(boxes, boxes, torch.ones(5, 4), sigma_t=0.0)


def test_cuda_tensor_on_cpu_only_build_is_reported(monkeypatch):
    class FakeCuda:  # a CPU-only torch cannot allocate CUDA tensors; only .is_cuda is read
        is_cuda = True

    monkeypatch.setattr(_extension, "cuda_version", lambda: -1)
    with pytest.raises(RuntimeError, match="boxes is a CUDA tensor but d2_boxunc was built"):
        _extension.check_device_supported(FakeCuda(), "boxes")


# ------------------------------------------------------------------ dispatcher, fake, compile


def _sample_args():
    boxes, scores, g = clustered_boxes(40, 1)
    idxs = torch.randint(0, 3, (40,), generator=g)
    lv = torch.randn(40, 4, generator=g)
    empty = torch.zeros(0, 4)
    ops = torch.ops.d2_boxunc
    return [
        (ops.soft_nms, (boxes, scores, None, 0.5, 0.3, 0.001, 1)),
        (ops.soft_nms, (boxes, scores, idxs, 0.5, 0.3, 0.001, 0)),
        (ops.soft_nms, (empty, torch.zeros(0), None, 0.5, 0.3, 0.001, 2)),
        (ops.iou_guided_nms, (boxes, scores, scores.flip(0), idxs, 0.5)),
        (ops.iou_guided_nms, (empty, torch.zeros(0), torch.zeros(0), None, 0.5)),
        (ops.kl_nms, (boxes, scores, lv, idxs, 0.5, 0.001, 0.02, 0.0, True, 0.5)),
        (ops.kl_nms, (boxes, scores, None, None, 0.5, 0.001, 0.02, 0.0, False, 0.5)),
        (ops.var_voting, (boxes[:5], boxes, lv.exp(), 0.02, 0.0)),
    ]


@pytest.mark.parametrize("case", range(8))
def test_opcheck(case):
    op, args = _sample_args()[case]
    # inference-only ops: no autograd registration to test; the rest includes the fake kernel
    # with its dynamic output size and AOT dispatch under dynamic shapes
    torch.library.opcheck(
        op, args, test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic")
    )


def test_torch_compile_fullgraph():
    boxes, scores, g = clustered_boxes(60, 2)
    idxs = torch.randint(0, 3, (60,), generator=g)
    log_vars = torch.randn(60, 4, generator=g)

    def post_process(boxes, scores, idxs, log_vars):
        keep, voted, out = batched_kl_nms(boxes, scores, log_vars, idxs, soft=True)
        keep2, out2 = batched_soft_nms(boxes, scores, idxs)
        return voted * out[:, None], keep, keep2, out2

    compiled = torch.compile(post_process, backend="aot_eager", fullgraph=True)
    for got, expected in zip(
        compiled(boxes, scores, idxs, log_vars), post_process(boxes, scores, idxs, log_vars)
    ):
        torch.testing.assert_close(got, expected)


# ---------------------------------------------------------------------------------- CPU vs CUDA


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_device_matches_reference(device):
    boxes, scores, g = clustered_boxes(150, 4)
    ious = torch.rand(150, generator=g)
    log_vars = torch.randn(150, 4, generator=g)
    idxs = torch.randint(0, 3, (150,), generator=g)
    d = [t.to(device) for t in (boxes, scores, ious, log_vars, idxs)]

    keep, out = batched_iou_guided_nms(d[0], d[1], d[2], d[4], 0.5)
    keep_ref, out_ref = ref.batched_iou_guided_nms(boxes, scores, ious, idxs, 0.5)
    assert torch.equal(keep.cpu(), keep_ref) and torch.equal(out.cpu(), out_ref)
    keep, out = batched_soft_nms(d[0], d[1], d[4])
    assert torch.equal(keep.cpu(), ref.batched_soft_nms(boxes, scores, idxs)[0])
    keep, voted, out = kl_nms(d[0], d[1], d[3], soft=True)
    keep_ref, voted_ref, _ = ref.kl_nms(boxes, scores, log_vars, soft=True)
    assert torch.equal(keep.cpu(), keep_ref)
    torch.testing.assert_close(voted.cpu(), voted_ref, rtol=1e-5, atol=1e-4)
    voted = var_voting(d[0][:20], d[0], d[3].exp())
    torch.testing.assert_close(
        voted.cpu(), ref.var_voting(boxes[:20], boxes, log_vars.exp()), rtol=1e-5, atol=1e-4
    )
    # every result on the inputs' device (soft-NMS and KL-NMS on CUDA: a host round-trip)
    results = [
        *batched_soft_nms(d[0], d[1], d[4]),
        *batched_kl_nms(d[0], d[1], d[3], d[4]),
        *soft_nms(d[0], d[1]),
        *iou_guided_nms(d[0], d[1], d[2], 0.5),
        voted,
    ]
    assert all(t.device.type == device for t in results)


NAN, INF = float("nan"), float("inf")


def _nms_calls():
    """(label, call(**override), hyper-parameter names) for every wrapper."""
    boxes, scores, g = clustered_boxes(12, 5)
    idxs = torch.randint(0, 2, (12,), generator=g)
    log_vars = torch.randn(12, 4, generator=g)
    return [
        ("soft_nms", lambda **kw: soft_nms(boxes, scores, **kw)),
        ("batched_soft_nms", lambda **kw: batched_soft_nms(boxes, scores, idxs, **kw)),
        (
            "iou_guided_nms",
            lambda iou_threshold=0.5: iou_guided_nms(boxes, scores, scores, iou_threshold),
        ),
        (
            "batched_iou_guided_nms",
            lambda iou_threshold=0.5: batched_iou_guided_nms(
                boxes, scores, scores, idxs, iou_threshold
            ),
        ),
        ("var_voting", lambda **kw: var_voting(boxes[:3], boxes, log_vars.exp(), **kw)),
        ("kl_nms", lambda **kw: kl_nms(boxes, scores, log_vars, **kw)),
        ("batched_kl_nms", lambda **kw: batched_kl_nms(boxes, scores, log_vars, idxs, **kw)),
    ]


# (wrappers, argument, extra kwargs making it used, bad values, message)
IOU_MSG = r"must be in \[-1, 1\]"
POS_MSG = "must be > 0 and finite"
BAD_HYPER_PARAMETERS = [
    ("soft_nms batched_soft_nms", "sigma", {}, [NAN, 0.0, -0.5, INF], POS_MSG),
    (
        "soft_nms batched_soft_nms",
        "iou_threshold",
        {"method": "hard"},
        [NAN, 1.5, -2, INF],
        IOU_MSG,
    ),
    ("soft_nms batched_soft_nms", "score_threshold", {}, [NAN, INF, -INF], "must be a finite"),
    ("iou_guided_nms batched_iou_guided_nms", "iou_threshold", {}, [NAN, 50.0, -INF], IOU_MSG),
    ("var_voting", "sigma_t", {}, [NAN, 0.0, -1.0, INF], POS_MSG),
    ("var_voting", "iou_threshold", {}, [NAN, 1.01, -1.01], IOU_MSG),
    ("kl_nms batched_kl_nms", "iou_threshold", {}, [NAN, 2.0, -INF], IOU_MSG),
    ("kl_nms batched_kl_nms", "score_threshold", {}, [NAN, -INF], "must be a finite"),
    ("kl_nms batched_kl_nms", "sigma_t", {}, [NAN, 0.0, INF], POS_MSG),
    ("kl_nms batched_kl_nms", "soft_sigma", {"soft": True}, [NAN, 0.0, -1.0, INF], POS_MSG),
    ("kl_nms batched_kl_nms", "vote_iou_threshold", {}, [NAN, 1.5, -3.0], IOU_MSG),
]


@pytest.mark.parametrize("wrappers,arg,extra,values,match", BAD_HYPER_PARAMETERS)
def test_nan_or_out_of_range_hyper_parameters_are_rejected(wrappers, arg, extra, values, match):
    calls = dict(_nms_calls())
    for name in wrappers.split():
        for value in values:
            with pytest.raises(ValueError, match=f"^{arg} {match}.*got {value!r}$"):
                calls[name](**extra, **{arg: value})


def test_hyper_parameters_at_the_ends_of_their_ranges_are_accepted():
    calls = dict(_nms_calls())
    for iou in (-1.0, 0.0, 1.0):  # a negative threshold takes every box, 1 none
        assert len(calls["soft_nms"](method="hard", iou_threshold=iou)[0]) > 0
        assert len(calls["iou_guided_nms"](iou_threshold=iou)[0]) > 0
        assert len(calls["kl_nms"](iou_threshold=iou, vote_iou_threshold=iou)[0]) > 0
        assert calls["var_voting"](iou_threshold=iou).shape == (3, 4)
    assert len(calls["soft_nms"](score_threshold=-1e30)[0]) == 12
    assert len(calls["kl_nms"](score_threshold=5.0)[0]) == 0
    # a width that the chosen mode does not read is not checked (as before)
    assert len(calls["soft_nms"](method="linear", sigma=0.0)[0]) > 0
    assert len(calls["kl_nms"](soft=False, soft_sigma=-1.0)[0]) > 0
    with pytest.raises(TypeError, match="iou_threshold must be a float"):
        calls["soft_nms"](iou_threshold=None)
