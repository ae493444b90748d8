"""PrRoIPool: compiled op vs the pure-PyTorch reference, analytic identities
(docs/design.md#prroipool-definition), torch.library integration (opcheck, compile, autocast),
input validation and the FPN pooler."""

import math

import pytest
import torch
import torch.nn.functional as F
from detectron2.structures import Boxes

from d2_boxunc import _extension
from d2_boxunc.layers import PrRoIPool, prroi_pool
from d2_boxunc.layers._reference import prroi_pool as reference
from d2_boxunc.modeling.poolers import PrRoIPooler
from tests.conftest import cpu_and_cuda

# (batch, x1, y1, x2, y2) in image coordinates, for a 2x2x6x7 map at spatial_scale 0.5 (image
# 14x12): off the integer grid, crossing the border, smaller than a cell, partly and entirely
# outside the map.
EDGE_CASE_ROIS = [
    [0, 2.3, 1.7, 9.9, 8.1],  # inside, off-grid
    [1, -3.1, -2.3, 5.3, 4.9],  # crosses the top-left border
    [0, 9.1, 7.3, 15.7, 13.3],  # crosses the bottom-right border
    [1, 4.3, 4.1, 5.1, 4.7],  # smaller than one cell
    [0, 12.2, 1.1, 16.6, 3.9],  # partly past the right border (padding ramp)
    [1, -9.7, -9.1, -4.3, -5.9],  # entirely outside
]


def _op(input, rois, output_size, spatial_scale, aligned):
    return torch.ops.d2_boxunc.prroi_pool(input, rois, spatial_scale, *output_size, aligned)


IMPLS = [
    pytest.param(prroi_pool, id="op"),
    pytest.param(reference, id="reference"),
]


def _random_rois(num, batch, height, width, scale, dtype, device="cpu"):
    """RoIs of random position and size (at least one map cell: a float32 RoI much thinner than
    that loses relative precision in x2 - x1) on an (height x width) map, some crossing the
    border."""
    img_h, img_w = height / scale, width / scale
    x1 = torch.rand(num, dtype=torch.float64) * img_w * 1.2 - 0.1 * img_w
    y1 = torch.rand(num, dtype=torch.float64) * img_h * 1.2 - 0.1 * img_h
    w = torch.rand(num, dtype=torch.float64) * img_w * 0.6 + 1 / scale
    h = torch.rand(num, dtype=torch.float64) * img_h * 0.6 + 1 / scale
    b = torch.randint(0, batch, (num,)).double()
    return torch.stack([b, x1, y1, x1 + w, y1 + h], 1).to(dtype=dtype, device=device)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("aligned", [False, True])
def test_gradcheck(impl, aligned):
    x = torch.randn(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(EDGE_CASE_ROIS, dtype=torch.float64)
    batch, coords = rois[:, :1], rois[:, 1:].requires_grad_()
    fn = lambda x, c: impl(x, torch.cat([batch, c], 1), (2, 3), 0.5, aligned)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, coords), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "dtype,rtol", [(torch.float32, 1e-5), (torch.float64, 1e-10)], ids=["fp32", "fp64"]
)
@pytest.mark.parametrize("aligned", [False, True])
def test_kernel_matches_reference(dtype, rtol, aligned):
    x = torch.randn(3, 4, 13, 17, dtype=torch.float64)
    rois = _random_rois(40, 3, 13, 17, 0.25, torch.float64)
    grad = torch.randn(40, 4, 7, 5, dtype=torch.float64)

    def run(impl, x, rois):
        x, rois = x.clone().requires_grad_(), rois.clone().requires_grad_()
        out = impl(x, rois, (7, 5), 0.25, aligned)
        gx, gr = torch.autograd.grad(out, (x, rois), grad.to(out.dtype))
        return out, gx, gr

    x, rois = x.to(dtype), rois.to(dtype)
    expected = run(reference, x.double(), rois.double())
    actual = run(prroi_pool, x, rois)
    for a, e, name in zip(actual, expected, ("output", "grad_input", "grad_rois")):
        assert a.dtype == dtype
        scale = e.abs().max().item()
        torch.testing.assert_close(
            a.double(), e, rtol=rtol, atol=rtol * scale, msg=lambda m, name=name: f"{name}: {m}"
        )


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"], ids=lambda v: v)
def test_memory_layouts_agree_with_reference(layout):
    """The CPU kernels work per image on (H, W, 16) slices of 16-channel groups, made by 4 x 4
    transposes in 16 x 16 tiles: 35 channels leave a partial group, 37 x 45 maps partial tiles;
    a channels-last input and a non-contiguous view agree too."""
    torch.manual_seed(0)
    base = torch.randn(2, 70, 37, 45, dtype=torch.float64)
    x = {
        "contiguous": base[:, :35],
        "channels_last": base[:, :35].contiguous(memory_format=torch.channels_last),
        "strided": base[:, ::2],
    }[layout]
    rois = _random_rois(30, 2, 37, 45, 0.5, torch.float64)
    grad = torch.randn(30, 35, 3, 4, dtype=torch.float64)

    def run(impl):
        xi, r = x.detach().clone(memory_format=torch.preserve_format), rois.clone()
        xi.requires_grad_(), r.requires_grad_()
        out = impl(xi, r, (3, 4), 0.5, True)
        return (out, *torch.autograd.grad(out, (xi, r), grad))

    for a, e in zip(run(prroi_pool), run(reference)):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


def test_results_do_not_depend_on_the_thread_count():
    """Work items are (image, channel group) and d/d rois sums the groups in a fixed order, so
    every output and gradient is bit-identical whatever the number of threads."""
    torch.manual_seed(0)
    x = torch.randn(2, 35, 23, 29)
    rois = _random_rois(50, 2, 23, 29, 0.5, torch.float32)
    grad = torch.randn(50, 35, 7, 7)

    def run():
        xi, r = x.clone().requires_grad_(), rois.clone().requires_grad_()
        out = prroi_pool(xi, r, 7, 0.5)
        return (out, *torch.autograd.grad(out, (xi, r), grad))

    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(run())
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


@pytest.mark.parametrize("impl", IMPLS)
def test_avg_pool_identity(impl):
    # Over one unit cell the bilinear patch integrates to the mean of its 4 corners.
    x = torch.randn(2, 3, 10, 9, dtype=torch.float64)
    rois = torch.tensor([[0, 0, 0, 14, 14], [1, 0, 0, 14, 14]], dtype=torch.float64)
    out = impl(x, rois, 7, 0.5, False)
    torch.testing.assert_close(out, F.avg_pool2d(x, 2, stride=1)[..., :7, :7])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("aligned", [False, True])
def test_constant_map(impl, aligned):
    x = torch.full((1, 2, 12, 12), 3.25, dtype=torch.float64)
    rois = torch.tensor([[0, 5.3, 4.1, 17.9, 19.7]], dtype=torch.float64, requires_grad=True)
    out = impl(x, rois, (3, 4), 0.5, aligned)
    torch.testing.assert_close(out, torch.full_like(out, 3.25))
    (grad,) = torch.autograd.grad(out.sum(), rois)
    torch.testing.assert_close(grad, torch.zeros_like(grad), atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_linear_ramp(impl):
    ph, pw, s = 3, 4, 0.5
    x = torch.arange(12, dtype=torch.float64).expand(1, 1, 12, 12)  # F[i, j] = j
    rois = torch.tensor([[0, 4.6, 3.4, 15.8, 12.4]], dtype=torch.float64)
    x1, x2 = rois[0, 1] * s, rois[0, 3] * s
    bw = (x2 - x1) / pw
    q = torch.arange(pw, dtype=torch.float64)
    out = impl(x, rois, (ph, pw), s, False)
    torch.testing.assert_close(out[0, 0], (x1 + (q + 0.5) * bw).expand(ph, pw))

    jac = torch.autograd.functional.jacobian(lambda r: impl(x, r, (ph, pw), s, False), rois)
    jac = jac[0, 0, :, :, 0]  # (ph, pw, 5): d out[p, q] / d roi
    t = ((q + 0.5) / pw).expand(ph, pw)
    torch.testing.assert_close(jac[..., 1], s * (1 - t))
    torch.testing.assert_close(jac[..., 3], s * t)
    zero = torch.zeros(ph, pw, dtype=torch.float64)
    for k in (0, 2, 4):  # batch index, y1, y2
        torch.testing.assert_close(jac[..., k], zero, atol=1e-12, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("aligned", [False, True])
def test_zero_area_and_inverted_rois(impl, aligned):
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(
        [[0, 3, 3, 3, 9], [0, 3, 3, 9, 3], [0, 9, 9, 3, 3], [0, 4, 2, 1, 7]],
        dtype=torch.float64,
        requires_grad=True,
    )
    out = impl(x, rois, 2, 0.5, aligned)
    assert torch.equal(out, torch.zeros(4, 2, 2, 2, dtype=torch.float64))
    gx, gr = torch.autograd.grad(out.sum(), (x, rois))
    assert torch.equal(gx, torch.zeros_like(x)) and torch.equal(gr, torch.zeros_like(rois))


@pytest.mark.parametrize("boxes", ["tensor", "list"])
def test_empty_rois(boxes):
    x = torch.randn(2, 3, 5, 5, requires_grad=True)
    rois = torch.zeros(0, 5) if boxes == "tensor" else [torch.zeros(0, 4), torch.zeros(0, 4)]
    out = prroi_pool(x, rois, (2, 3), 0.5)
    assert out.shape == (0, 3, 2, 3)
    (gx,) = torch.autograd.grad(out.sum(), x)
    assert torch.equal(gx, torch.zeros_like(x))


def test_list_of_boxes_equals_roi_tensor():
    x = torch.randn(2, 3, 9, 9)
    boxes = [
        torch.tensor([[1.0, 2.0, 9.0, 7.5]]),
        torch.tensor([[0.5, 0.5, 4.0, 6.0], [3, 3, 8, 8.0]]),
    ]
    rois = torch.tensor([[0, 1.0, 2.0, 9.0, 7.5], [1, 0.5, 0.5, 4.0, 6.0], [1, 3, 3, 8, 8.0]])
    assert torch.equal(prroi_pool(x, boxes, 3, 0.5), prroi_pool(x, rois, 3, 0.5))


def test_module():
    pool = PrRoIPool(3, 0.25, aligned=False)
    assert repr(pool) == "PrRoIPool(output_size=(3, 3), spatial_scale=0.25, aligned=False)"
    x = torch.randn(1, 2, 9, 9)
    rois = torch.tensor([[0, 1.0, 3.0, 20.0, 27.0]])
    assert torch.equal(pool(x, rois), prroi_pool(x, rois, (3, 3), 0.25, aligned=False))


def test_opcheck():
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor(EDGE_CASE_ROIS, dtype=torch.float64, requires_grad=True)
    empty_rois = torch.zeros(0, 5, dtype=torch.float64, requires_grad=True)
    forward = torch.ops.d2_boxunc.prroi_pool.default
    backward = torch.ops.d2_boxunc._prroi_pool_backward.default
    for r in (rois, empty_rois):
        for aligned in (False, True):
            torch.library.opcheck(forward, (x, r, 0.5, 2, 3, aligned))
            out = forward(x, r, 0.5, 2, 3, aligned).detach()
            args = (torch.randn_like(out), x.detach(), r.detach(), out, 0.5, 2, 3, aligned)
            torch.library.opcheck(backward, args)
            torch.library.opcheck(backward, args + (False,))  # rois gradient only
            torch.library.opcheck(backward, args + (True, False))  # input gradient only


@pytest.mark.parametrize("wanted", ["rois", "input"])
def test_one_sided_backward_skips_the_other_gradient_and_agrees(wanted):
    """Refinement differentiates w.r.t. the boxes only, training on detached RoIs w.r.t. the
    features only: the gradient asked for equals the full backward's, the other is not computed."""
    x = torch.randn(2, 4, 9, 11, dtype=torch.float64)
    rois = torch.tensor(EDGE_CASE_ROIS, dtype=torch.float64)
    weights = torch.randn(len(rois), 4, 3, 3, dtype=torch.float64)
    r_both, x_both = rois.clone().requires_grad_(), x.clone().requires_grad_()
    (prroi_pool(x_both, r_both, 3, 0.5) * weights).sum().backward()
    x_one = x.clone().requires_grad_(wanted == "input")
    r_one = rois.clone().requires_grad_(wanted == "rois")
    (prroi_pool(x_one, r_one, 3, 0.5) * weights).sum().backward()
    got, full = (r_one.grad, r_both.grad) if wanted == "rois" else (x_one.grad, x_both.grad)
    torch.testing.assert_close(got, full, rtol=0, atol=0)
    out = torch.ops.d2_boxunc.prroi_pool(x, rois, 0.5, 3, 3, True)
    grad_input, grad_rois = torch.ops.d2_boxunc._prroi_pool_backward(
        torch.ones_like(out), x, rois, out, 0.5, 3, 3, True, wanted == "input", wanted == "rois"
    )
    assert grad_input.shape == (x.shape if wanted == "input" else (0,))
    assert grad_rois.shape == (rois.shape if wanted == "rois" else (0,))


def test_double_backward_is_refused():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 1.5, 8.0, 9.0]], dtype=torch.float64, requires_grad=True)
    out = prroi_pool(x, rois, 2, 0.5)
    gx, _ = torch.autograd.grad(out.pow(2).sum(), (x, rois), create_graph=True)
    with pytest.raises(RuntimeError, match="does not support double backward"):
        gx.sum().backward()


def test_torch_compile_fullgraph():
    x = torch.randn(2, 3, 9, 11, requires_grad=True)
    rois = torch.tensor([[0, 1.0, 2.0, 15.0, 12.0], [1, 4.5, 0.3, 9.0, 17.0]], requires_grad=True)
    fn = lambda x, r: prroi_pool(x, r, (3, 2), 0.5)  # noqa: E731
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    out = compiled(x, rois)
    expected = fn(x, rois)
    torch.testing.assert_close(out, expected)
    got = torch.autograd.grad(out.sum(), (x, rois))
    want = torch.autograd.grad(expected.sum(), (x, rois))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_autocast_bfloat16_computes_in_float32():
    x = torch.randn(1, 4, 9, 9).bfloat16().requires_grad_()
    rois = torch.tensor([[0, 1.3, 2.2, 15.1, 13.7]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = prroi_pool(x, rois, 3, 0.5)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, prroi_pool(x.detach().float(), rois, 3, 0.5), rtol=0, atol=0)
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16 and x.grad.abs().sum() > 0


def test_fallback_to_reference(monkeypatch, caplog):
    x = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    rois = torch.tensor(EDGE_CASE_ROIS, dtype=torch.float64)
    expected = prroi_pool(x, rois, (2, 3), 0.5)
    monkeypatch.setattr(_extension, "has_ops", lambda: False)
    with caplog.at_level("WARNING"):
        out = prroi_pool(x, rois, (2, 3), 0.5)
    torch.testing.assert_close(out, expected)
    assert "slow pure-PyTorch reference" in caplog.text


def _fake_cuda_input():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        return torch.empty(1, 2, 4, 4, device="cuda"), torch.zeros(1, 5, device="cuda")


BAD_INPUTS = [
    # (input, rois, output_size, spatial_scale, error, match)
    (
        lambda: torch.randn(2, 4, 4),
        None,
        2,
        0.5,
        ValueError,
        r"input must be a Tensor\[N, C, H, W\]",
    ),
    (lambda: [[1.0]], None, 2, 0.5, TypeError, "input must be a Tensor"),
    (lambda: torch.zeros(1, 2, 4, 4, dtype=torch.int64), None, 2, 0.5, TypeError, "floating-point"),
    (None, lambda: torch.zeros(1, 4), 2, 0.5, ValueError, r"rois must be a Tensor\[K, 5\]"),
    (None, lambda: torch.zeros(5), 2, 0.5, ValueError, r"rois must be a Tensor\[K, 5\]"),
    (None, lambda: [torch.zeros(1, 5)], 2, 0.5, ValueError, r"rois\[0\] must be a Tensor\[L, 4\]"),
    (None, lambda: [], 2, 0.5, ValueError, "rois is an empty list"),
    (None, lambda: "boxes", 2, 0.5, TypeError, r"rois must be a Tensor\[K, 5\] or a list"),
    (None, lambda: torch.zeros(1, 5, dtype=torch.float64), 2, 0.5, TypeError, "same dtype"),
    (None, lambda: torch.zeros(1, 5, device="meta"), 2, 0.5, ValueError, "same device"),
    (None, lambda: torch.tensor([[0, 1, 1, math.nan, 3.0]]), 2, 0.5, ValueError, "finite"),
    (None, lambda: torch.tensor([[0, -math.inf, 1, 2, 3.0]]), 2, 0.5, ValueError, "finite"),
    (None, lambda: torch.tensor([[0.5, 1, 1, 2, 3.0]]), 2, 0.5, ValueError, "integer values"),
    (None, lambda: torch.tensor([[2.0, 1, 1, 2, 3]]), 2, 0.5, ValueError, r"must lie in \[0, 1\]"),
    (None, lambda: torch.tensor([[-1.0, 1, 1, 2, 3]]), 2, 0.5, ValueError, r"must lie in \[0, 1\]"),
    (None, None, 0, 0.5, ValueError, "output_size must be"),
    (None, None, (2,), 0.5, ValueError, "output_size must be"),
    (None, None, (2, 0), 0.5, ValueError, "output_size must be"),
    (None, None, 2.5, 0.5, ValueError, "output_size must be"),
    (None, None, True, 0.5, ValueError, "output_size must be"),
    (None, None, 2, 0.0, ValueError, "spatial_scale must be"),
    (None, None, 2, -0.5, ValueError, "spatial_scale must be"),
    (None, None, 2, math.inf, ValueError, "spatial_scale must be"),
    (None, None, 2, "0.5", ValueError, "spatial_scale must be"),
]


@pytest.mark.parametrize("make_input,make_rois,output_size,scale,error,match", BAD_INPUTS)
def test_bad_input_is_rejected(make_input, make_rois, output_size, scale, error, match):
    x = make_input() if make_input else torch.randn(2, 2, 4, 4)
    rois = make_rois() if make_rois else torch.tensor([[0, 1.0, 1.0, 5.0, 6.0]])
    with pytest.raises(error, match=match):
        prroi_pool(x, rois, output_size, scale)


def test_cuda_tensor_on_cpu_only_build_is_rejected(monkeypatch):
    monkeypatch.setattr(_extension, "cuda_version", lambda: -1)
    x, rois = _fake_cuda_input()
    with pytest.raises(RuntimeError, match="built without CUDA kernels"):
        prroi_pool(x, rois, 2, 0.5)


@pytest.mark.parametrize("device", cpu_and_cuda())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_device_matches_cpu_reference(device, dtype):
    x = torch.randn(2, 5, 11, 14, dtype=torch.float64)
    rois = _random_rois(30, 2, 11, 14, 0.5, torch.float64)
    grad = torch.randn(30, 5, 7, 7, dtype=torch.float64)
    x, rois = x.to(dtype).double(), rois.to(dtype).double()
    xd = x.to(device, dtype).requires_grad_()
    rd = rois.to(device, dtype).requires_grad_()
    out = prroi_pool(xd, rd, 7, 0.5)
    gx, gr = torch.autograd.grad(out, (xd, rd), grad.to(device, dtype))
    xr, rr = x.clone().requires_grad_(), rois.clone().requires_grad_()
    ref = reference(xr, rr, 7, 0.5)
    ref_gx, ref_gr = torch.autograd.grad(ref, (xr, rr), grad)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    for a, e in ((out, ref), (gx, ref_gx), (gr, ref_gr)):
        scale = e.abs().max().item()
        torch.testing.assert_close(a.cpu().double(), e, rtol=tol, atol=tol * scale)


def test_pooler_gradients_reach_boxes():
    scales = (1 / 4, 1 / 8, 1 / 16, 1 / 32)
    pooler = PrRoIPooler(7, scales, sampling_ratio=0, pooler_type="ROIAlignV2")
    assert all(isinstance(p, PrRoIPool) and p.aligned for p in pooler.level_poolers)
    feats = [torch.randn(2, 3, 256 // int(1 / s), 256 // int(1 / s)) for s in scales]
    box_tensors = [
        torch.tensor([[10.0, 12.0, 40.0, 50.0], [5.0, 7.0, 250.0, 240.0]], requires_grad=True),
        torch.tensor([[30.0, 20.0, 170.0, 180.0], [100.5, 90.2, 120.3, 118.9]], requires_grad=True),
    ]
    pooled = pooler(feats, [Boxes(b) for b in box_tensors])
    assert pooled.shape == (4, 3, 7, 7)
    # Box 1 of image 0 (about 240 px) goes to level 4 (stride 16, index 2).
    expected = prroi_pool(feats[2], [box_tensors[0][1:], box_tensors[1][:0]], 7, 1 / 16)
    torch.testing.assert_close(pooled[1:2], expected)
    pooled.sum().backward()
    for b in box_tensors:
        assert b.grad is not None and (b.grad != 0).all()


def test_op_is_safe_on_non_finite_and_huge_rois():
    # The wrapper rejects these; called directly, the op must neither hang nor read out of bounds.
    x = torch.randn(1, 2, 5, 6, requires_grad=True)
    rois = torch.tensor(
        [
            [0, math.nan, 1, 4, 5],
            [0, 1, 1, math.inf, 5],
            [0, -math.inf, -math.inf, math.inf, math.inf],
            [0, -1e29, -1e29, 1e29, 1e29],
            [0, 1e8, 1e8, 1e8 + 64, 1e8 + 64],
        ],
        requires_grad=True,
    )
    out = torch.ops.d2_boxunc.prroi_pool(x, rois, 0.5, 2, 2, True)
    assert torch.equal(out[:3], torch.zeros(3, 2, 2, 2))
    assert torch.isfinite(out).all() and out[3:].abs().max() < 1e-6
    gx, gr = torch.autograd.grad(out.sum(), (x, rois))
    assert torch.isfinite(gx).all() and torch.equal(gr[:3], torch.zeros(3, 5))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("ops", ["compiled", "reference"])
def test_half_input_outside_autocast_is_rejected_by_the_wrapper(dtype, ops, monkeypatch):
    if ops == "reference":
        monkeypatch.setattr(_extension, "has_ops", lambda: False)
    x = torch.randn(1, 2, 6, 6).to(dtype)
    rois = torch.tensor([[0, 1.0, 1.0, 9.0, 9.0]])
    match = r"supports float32 and float64 inputs, got torch\.(b?float16).*torch\.autocast"
    for r in (rois.to(dtype), rois):
        with pytest.raises(TypeError, match=match):
            prroi_pool(x, r, 2, 0.5)
    with torch.autocast("cpu", dtype=dtype):  # the autocast route still computes in float32
        out = prroi_pool(x, rois.to(dtype), 2, 0.5)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, prroi_pool(x.float(), rois, 2, 0.5))
