"""Every CUDA kernel body of csrc/ executed on the CPU (docs/gpu.md).

The `_*_gridcpu` test ops run the HOST_DEVICE bodies of the CUDA kernels through a CPU "grid
launcher" (every index; block by block and phase by phase where a kernel synchronises), with the
CUDA op's own host code around the launch. Here they are compared with the CPU ops, which have
their own (vectorised, differently organised) kernels, and with the pure-PyTorch references.
"""

import pytest
import torch

from d2_boxunc import _extension
from d2_boxunc.layers import _reference as ref
from d2_boxunc.layers._reference import prroi_pool as prroi_reference

pytestmark = pytest.mark.skipif(not _extension.has_ops(), reason="needs d2_boxunc._C")

ops = torch.ops.d2_boxunc
DTYPES = (torch.float32, torch.float64)


def _tol(dtype):
    return (
        {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    )


# ------------------------------------------------------------------------------------ PrRoIPool
# (batch, x1, y1, x2, y2) for a 2 x C x 9 x 11 map at spatial_scale 0.5 (image 22 x 18)
VALID_ROIS = [
    [0, 2.3, 1.7, 9.9, 8.1],  # inside, off-grid
    [1, -3.1, -2.3, 5.3, 4.9],  # crosses the top-left border
    [0, 15.1, 11.3, 23.7, 19.3],  # crosses the bottom-right border
    [1, 4.3, 4.1, 5.1, 4.7],  # smaller than one cell
    [0, 18.2, 1.1, 26.6, 3.9],  # partly past the right border (padding ramp)
    [1, -9.7, -9.1, -4.3, -5.9],  # entirely outside
    [0, 0.0, 0.0, 22.0, 18.0],  # the whole image
]
# RoIs that pool nothing (output 0, gradient 0): zero area, inverted, non-finite, out-of-range
# batch index. The Python wrapper rejects the last three kinds on the CPU; the kernels must still
# be safe on them (they are not checked on CUDA, docs/gpu.md#host-syncs).
EMPTY_ROIS = [
    [0, 3.0, 3.0, 3.0, 7.0],
    [1, 8.0, 2.0, 4.0, 6.0],
    [0, float("nan"), 1.0, 5.0, 5.0],
    [1, 1.0, 1.0, float("inf"), 5.0],
    [0, float("-inf"), 1.0, 4.0, 5.0],
    [2, 1.0, 1.0, 5.0, 5.0],
    [-1, 1.0, 1.0, 5.0, 5.0],
]


def _prroi_case(dtype, channels=5, layout="nchw"):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, channels, 9, 11, generator=g, dtype=torch.float64).to(dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == "strided":  # a view that is neither layout: the host code copies it
        x = torch.randn(2, channels, 9, 22, generator=g, dtype=torch.float64).to(dtype)[..., ::2]
    rois = torch.tensor(VALID_ROIS + EMPTY_ROIS, dtype=dtype)
    return x, rois, len(VALID_ROIS)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("output_size", [(1, 1), (2, 3), (7, 7)])
def test_prroi_forward_body_matches_cpu_op_and_reference(dtype, aligned, output_size):
    x, rois, nvalid = _prroi_case(dtype)
    args = (0.5, *output_size, aligned)
    out = ops._prroi_pool_forward_gridcpu(x, rois, *args)
    expect = ops.prroi_pool(x, rois, *args)
    torch.testing.assert_close(out, expect, **_tol(dtype))
    assert torch.all(out[nvalid:] == 0)
    reference = prroi_reference(x, rois[:nvalid], output_size, 0.5, aligned)
    torch.testing.assert_close(out[:nvalid], reference, **_tol(dtype))


def _backward_both(fn, x, rois, grad, args, input_grad=True, rois_grad=True):
    out = ops.prroi_pool(x, rois, *args)
    return fn(grad, x, rois, out, *args, input_grad, rois_grad)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True])
def test_prroi_backward_body_matches_cpu_op(dtype, aligned):
    """Both gradients, including the box gradient summed by four atomics per output element from
    every channel and bin of a RoI, and output elements whose gradient is 0 (skipped)."""
    x, rois, nvalid = _prroi_case(dtype)
    args = (0.5, 3, 4, aligned)
    g = torch.Generator().manual_seed(5)
    grad = torch.randn(rois.shape[0], x.shape[1], 3, 4, generator=g, dtype=torch.float64)
    grad = grad.to(dtype)
    grad[0, 1] = 0  # a zero gradient: the body returns before any atomic
    gi, gr = _backward_both(ops._prroi_pool_backward_gridcpu, x, rois, grad, args)
    ei, er = _backward_both(ops._prroi_pool_backward, x, rois, grad, args)
    torch.testing.assert_close(gi, ei, **_tol(dtype))
    torch.testing.assert_close(gr, er, **_tol(dtype))
    assert torch.all(gr[:, 0] == 0) and torch.all(gr[nvalid:] == 0)
    # the box gradient is not trivially zero on the valid RoIs that meet the map
    assert gr[:5, 1:].abs().sum() > 0


def test_prroi_backward_body_matches_reference_autograd():
    """float64: the atomics' sums equal autograd through the pure-PyTorch reference."""
    x, rois, nvalid = _prroi_case(torch.float64)
    rois = rois[:nvalid]
    xr, rr = x.clone().requires_grad_(), rois.clone().requires_grad_()
    out = prroi_reference(xr, rr, (3, 2), 0.5, True)
    grad = torch.randn_like(out)
    out.backward(grad)
    gi, gr = ops._prroi_pool_backward_gridcpu(grad, x, rois, out.detach(), 0.5, 3, 2, True)
    torch.testing.assert_close(gi, xr.grad, rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(gr[:, 1:], rr.grad[:, 1:], rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("wanted", ["input", "rois", "none"])
def test_prroi_backward_body_one_sided(wanted):
    x, rois, _ = _prroi_case(torch.float64)
    args = (0.5, 2, 2, True)
    grad = torch.randn(rois.shape[0], x.shape[1], 2, 2, dtype=torch.float64)
    flags = (wanted == "input", wanted == "rois")
    gi, gr = _backward_both(ops._prroi_pool_backward_gridcpu, x, rois, grad, args, *flags)
    ei, er = _backward_both(ops._prroi_pool_backward, x, rois, grad, args, *flags)
    assert gi.shape == ei.shape and gr.shape == er.shape
    torch.testing.assert_close(gi, ei)
    torch.testing.assert_close(gr, er)


@pytest.mark.parametrize("layout", ["channels_last", "strided"])
def test_prroi_body_reads_the_layout_it_is_given(layout):
    """A channels-last map is read in place through its strides (d/d input comes back in the same
    layout); any other view is made contiguous first. Results equal the NCHW ones."""
    x, rois, _ = _prroi_case(torch.float64, layout=layout)
    x0 = x.contiguous()
    args = (0.5, 3, 3, True)
    out = ops._prroi_pool_forward_gridcpu(x, rois, *args)
    torch.testing.assert_close(out, ops._prroi_pool_forward_gridcpu(x0, rois, *args))
    grad = torch.randn_like(out)
    gi, gr = ops._prroi_pool_backward_gridcpu(grad, x, rois, out, *args)
    ei, er = ops._prroi_pool_backward_gridcpu(grad, x0, rois, out, *args)
    torch.testing.assert_close(gi, ei)
    torch.testing.assert_close(gr, er)
    if layout == "channels_last":
        assert gi.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    "shape, num_rois", [((2, 3, 9, 11), 0), ((2, 0, 9, 11), 3), ((2, 3, 0, 11), 3)]
)
def test_prroi_body_empty_inputs(shape, num_rois):
    x = torch.randn(shape, dtype=torch.float64)
    rois = torch.tensor(VALID_ROIS[:num_rois], dtype=torch.float64).reshape(-1, 5)
    out = ops._prroi_pool_forward_gridcpu(x, rois, 0.5, 2, 2, True)
    assert out.shape == (num_rois, shape[1], 2, 2) and torch.all(out == 0)
    gi, gr = ops._prroi_pool_backward_gridcpu(torch.ones_like(out), x, rois, out, 0.5, 2, 2, True)
    assert gi.shape == x.shape and gr.shape == rois.shape
    assert torch.all(gi == 0) and torch.all(gr == 0)


def test_prroi_body_checks_arguments():
    x, rois, _ = _prroi_case(torch.float64)
    with pytest.raises(RuntimeError, match="rois must be"):
        ops._prroi_pool_forward_gridcpu(x, rois[:, :4], 0.5, 2, 2, True)
    out = ops._prroi_pool_forward_gridcpu(x, rois, 0.5, 2, 2, True)
    with pytest.raises(RuntimeError, match="grad must be"):
        ops._prroi_pool_backward_gridcpu(out[:1], x, rois, out, 0.5, 2, 2, True)


# ---------------------------------------------------------------------------------- NMS family
def _clustered(n, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(max(n // 8, 1), 2, generator=g, dtype=torch.float64) * 200
    ctr = centres[torch.randint(0, len(centres), (n,), generator=g)]
    ctr = ctr + torch.randn(n, 2, generator=g, dtype=torch.float64) * 6
    wh = 10 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 50
    boxes = torch.cat([ctr - wh / 2, ctr + wh / 2], dim=1).to(dtype)
    scores = torch.rand(n, generator=g, dtype=torch.float64).to(dtype)
    ious = torch.rand(n, generator=g, dtype=torch.float64).to(dtype)
    classes = torch.randint(0, 3, (n,), generator=g)
    return boxes, scores, ious, classes


# 1 box, a partial tile, exactly one tile, several tiles with a partial last one
@pytest.mark.parametrize("n", [1, 37, 64, 200])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("threshold", [0.5, -0.1])
def test_iou_nms_mask_body_matches_cpu_op(n, dtype, batched, threshold):
    boxes, scores, ious, classes = _clustered(n, n, dtype)
    idxs = classes if batched else None
    keep, out = ops._iou_guided_nms_gridcpu(boxes, scores, ious, idxs, threshold)
    keep_cpu, out_cpu = ops.iou_guided_nms(boxes, scores, ious, idxs, threshold)
    assert torch.equal(keep, keep_cpu) and torch.equal(out, out_cpu)
    if batched:
        keep_ref, out_ref = ref.batched_iou_guided_nms(boxes, scores, ious, classes, threshold)
    else:
        keep_ref, out_ref = ref.iou_guided_nms(boxes, scores, ious, threshold)
    assert torch.equal(keep, keep_ref) and torch.equal(out, out_ref)


def test_iou_nms_mask_body_empty_and_degenerate():
    empty = torch.zeros(0, 4)
    keep, out = ops._iou_guided_nms_gridcpu(empty, torch.zeros(0), torch.zeros(0), None, 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.long and out.shape == (0,)
    # identical, inverted and zero-area boxes: IoU 0 for the degenerate ones (area 0)
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 1, 1], [3, 3, 3, 8.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    keys = torch.tensor([0.5, 0.5, 0.9, 0.1])
    keep, out = ops._iou_guided_nms_gridcpu(boxes, scores, keys, None, 0.3)
    keep_cpu, out_cpu = ops.iou_guided_nms(boxes, scores, keys, None, 0.3)
    assert torch.equal(keep, keep_cpu) and torch.equal(out, out_cpu)
    assert keep.tolist() == [2, 0, 3]


# the same sizes; thresholds: positive, 0 and negative (DIoU-NMS then also suppresses disjoint boxes)
@pytest.mark.parametrize("n", [1, 37, 64, 200])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("threshold", [0.4, 0.0, -0.2])
def test_diou_nms_mask_body_matches_cpu_op_and_reference(n, dtype, batched, threshold):
    boxes, scores, _, classes = _clustered(n, n + 1, dtype)
    idxs = classes if batched else None
    keep = ops._diou_nms_gridcpu(boxes, scores, idxs, threshold)
    assert torch.equal(keep, ops.diou_nms(boxes, scores, idxs, threshold))
    if batched:
        keep_ref = ref.batched_diou_nms(boxes, scores, classes, threshold)
    else:
        keep_ref = ref.diou_nms(boxes, scores, threshold)
    assert torch.equal(keep, keep_ref)


def test_diou_nms_mask_body_empty_and_degenerate():
    empty = ops._diou_nms_gridcpu(torch.zeros(0, 4), torch.zeros(0), None, 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.long
    # identical boxes (penalty 0), a box beside them (IoU 1/3, penalty 1/13), an inverted box and
    # two equal points (enclosing diagonal 0: penalty 0, IoU 0). Below 0 the disjoint boxes fall:
    # box 3 (penalty 0.04 with box 0) at -0.03 suppresses the points at its centre (penalty 0).
    boxes = torch.tensor(
        [[0, 0, 10, 10], [0, 0, 10, 10], [5, 0, 15, 10], [5, 5, 1, 1], [3, 3, 3, 3], [3, 3, 3, 3.0]]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    for threshold, expected in (
        (0.3, [0, 2, 3, 4, 5]),
        (0.25, [0, 3, 4, 5]),
        (-0.03, [0, 3]),
        (-0.1, [0]),
    ):
        keep = ops._diou_nms_gridcpu(boxes, scores, None, threshold)
        assert torch.equal(keep, ops.diou_nms(boxes, scores, None, threshold))
        assert keep.tolist() == expected, threshold


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("iou_threshold", [0.0, 0.6, 1.0])
def test_var_voting_body_matches_cpu_op_and_reference(dtype, iou_threshold):
    boxes, _, _, _ = _clustered(150, 7, dtype)
    g = torch.Generator().manual_seed(8)
    var = torch.exp(torch.randn(150, 4, generator=g, dtype=torch.float64) * 3).to(dtype)
    kept = torch.cat([boxes[:20], torch.tensor([[900.0, 900, 910, 910]], dtype=dtype)])  # no voter
    out = ops._var_voting_gridcpu(kept, boxes, var, 0.02, iou_threshold)
    torch.testing.assert_close(out, ops.var_voting(kept, boxes, var, 0.02, iou_threshold))
    torch.testing.assert_close(out, ref.var_voting(kept, boxes, var, 0.02, iou_threshold))
    assert torch.equal(out[-1], kept[-1])
    empty = ops._var_voting_gridcpu(kept[:0], boxes, var, 0.02, iou_threshold)
    assert empty.shape == (0, 4)


# ---------------------------------------------------------------------------------- aLRP bands
def _band_case(dtype, m, num_pos=40, label_dtype=torch.int64, seed=4):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(num_pos, generator=g, dtype=torch.float64)
    if num_pos > 10:
        u[:10] = u[10]  # 10 tied positives: a crowded cell (binary search in band_bucket)
    e = torch.sort(torch.cat([u - 1, u + 1])).values.to(dtype)
    v = (torch.randn(m, generator=g, dtype=torch.float64) * 2).to(dtype)
    if m >= 10:
        v[:4] = e[:4]  # exactly on edges
        v[4] = float("nan")
        v[5] = float("inf")
        v[6] = float("-inf")
        t = u[min(10, num_pos - 1)]
        v[7:9] = torch.stack([t - 1, t + 1]).to(dtype)  # on the (tied) edges
        v[9] = v[7].nextafter(v[7] - 1)  # just below them
    y = (torch.rand(m, generator=g) < 0.2).to(label_dtype)
    return v, y, e


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_dtype", [torch.int8, torch.int64])
@pytest.mark.parametrize("shared_buckets", [2048, 0])  # shared-memory histogram, global atomics
@pytest.mark.parametrize("m", [0, 5, 3000])
def test_band_stats_body_matches_cpu_op(dtype, label_dtype, shared_buckets, m):
    v, y, e = _band_case(dtype, m, label_dtype=label_dtype)
    cnt, tot = ops._alrp_band_stats_gridcpu(v, y, e, shared_buckets)
    ecnt, etot = ops.alrp_band_stats(v, y, e)
    assert torch.equal(cnt, ecnt)
    torch.testing.assert_close(tot, etot, rtol=1e-12, atol=1e-12)


def test_band_stats_body_grid_stride_loop():
    """More values than the grid's threads (4096 x 256): each thread loops over several values."""
    v, y, e = _band_case(torch.float32, 4096 * 256 + 777, num_pos=8)
    for shared_buckets in (2048, 0):
        cnt, tot = ops._alrp_band_stats_gridcpu(v, y, e, shared_buckets)
        ecnt, etot = ops.alrp_band_stats(v, y, e)
        assert torch.equal(cnt, ecnt)
        torch.testing.assert_close(tot, etot, rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [0, 3000])
def test_band_grad_body_matches_cpu_op(dtype, m):
    v, y, e = _band_case(dtype, m)
    g = torch.Generator().manual_seed(9)
    offset = torch.randn(e.numel() + 1, generator=g, dtype=torch.float64)
    slope = torch.randn(e.numel() + 1, generator=g, dtype=torch.float64)
    grad = ops._alrp_band_grad_gridcpu(v, y, e, offset, slope)
    assert torch.equal(grad, ops.alrp_band_grad(v, y, e, offset, slope))
    if m:
        assert torch.all(grad[y != 0] == 0) and torch.all(grad[4:7] == 0)  # non-finite: 0
