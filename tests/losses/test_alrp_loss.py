"""aLRP / AP Loss: the fast sorted algorithm equals the reference loop
(docs/design.md#fast-exact-ranking)."""

import pytest
import torch

from d2_boxunc._extension import has_ops
from d2_boxunc.losses import alrp_cls, alrp_loc, ap_loss
from d2_boxunc.losses import alrp_loss as alrp_module
from tests.conftest import cpu_and_cuda

ATOL = 1e-9
needs_ops = pytest.mark.skipif(not has_ops(), reason="compiled ops not built")


@pytest.fixture(params=["compiled", "torch"])
def bands(request, monkeypatch):
    """Run a test through the compiled band kernels and through the pure-PyTorch fallback."""
    if request.param == "compiled" and not has_ops():
        pytest.skip("compiled ops not built")
    if request.param == "torch":
        monkeypatch.setattr(alrp_module, "_use_compiled", lambda s: False)
    return request.param


def _case(num_pos, num=2000, kind="random", seed=0, device="cpu"):
    """Float64 logits with ties and values exactly delta apart; labels with ignored entries."""
    g = torch.Generator().manual_seed(seed)
    if kind == "grid":  # quarter steps: many exact ties and many pairs exactly 1.0 (= delta) apart
        s = torch.randint(-16, 16, (num,), generator=g).double() / 4
    else:
        s = torch.randn(num, generator=g, dtype=torch.float64) * 2
        s[: num // 4] = s[num // 4 : num // 2].round()  # exact ties ...
        s[num // 2 : num // 2 + 50] = s[num // 2 + 50 : num // 2 + 100] + 1.0  # ... and |.| = delta
    y = torch.zeros(num, dtype=torch.long)
    y[torch.randperm(num, generator=g)[: num // 10]] = -1
    y[torch.randperm(num, generator=g)[:num_pos]] = 1
    if kind == "separated":  # every negative far below every positive: N_FP = 0
        s = torch.where(y == 1, s.abs() + 10, -s.abs() - 10)
    if kind == "some_clear":  # a few positives with no negative within reach
        pos = torch.nonzero(y == 1).squeeze(1)
        s[pos[: max(1, num_pos // 3)]] = 50.0
    err = torch.rand(num_pos, generator=g, dtype=torch.float64) * 2
    return s.to(device), y.to(device), err.to(device)


def _run_alrp(s, y, err, impl):
    x = s.clone().requires_grad_()
    e = err.clone().requires_grad_()
    loss, rank, order = alrp_cls(x, y, e, impl=impl)
    loc = alrp_loc(e, rank, order)
    (loss + loc).backward()
    return loss.detach(), rank, order, x.grad, loc.detach(), e.grad


def _run_ap(s, y, impl):
    x = s.clone().requires_grad_()
    loss = ap_loss(x, y, impl=impl)
    loss.backward()
    return loss.detach(), x.grad


CASES = [(p, k) for p in (1, 2, 7, 500) for k in ("random", "grid")]
CASES += [(7, "separated"), (7, "some_clear"), (500, "some_clear")]


@pytest.mark.parametrize("num_pos,kind", CASES)
def test_alrp_sorted_equals_loop(num_pos, kind, bands):
    s, y, err = _case(num_pos, kind=kind)
    ref = _run_alrp(s, y, err, "loop")
    out = _run_alrp(s, y, err, "sorted")
    for name, a, b in zip(("loss", "rank", "order", "grad", "loc", "loc_grad"), ref, out):
        if name == "order":
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(b, a, atol=ATOL, rtol=0, msg=name)
    g = out[3]
    assert torch.all(g[(y != 0) & (y != 1)] == 0)  # ignored entries
    assert torch.all(g[y == 1] <= 0) and torch.all(g[y == 0] >= 0)
    # balance (paper Theorem 2): what the negatives get, the positives lose
    torch.testing.assert_close(g[y == 0].sum(), -g[y == 1].sum(), atol=ATOL, rtol=0)
    if kind == "separated":
        assert out[0].item() == 0 and torch.all(g == 0)
        assert torch.all(out[1] >= 1) and out[1].max() <= num_pos  # rank = rank+ only


@pytest.mark.parametrize("num_pos,kind", CASES)
def test_ap_sorted_equals_loop(num_pos, kind, bands):
    s, y, _ = _case(num_pos, kind=kind, seed=1)
    ref = _run_ap(s, y, "loop")
    out = _run_ap(s, y, "sorted")
    torch.testing.assert_close(out[0], ref[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(out[1], ref[1], atol=ATOL, rtol=0)
    g = out[1]
    torch.testing.assert_close(g[y == 0].sum(), -g[y == 1].sum(), atol=ATOL, rtol=0)
    assert torch.all(g[(y != 0) & (y != 1)] == 0)


def test_alrp_hand_computed():
    """Two positives, two negatives, delta = 1: every number by hand."""
    s = torch.tensor([2.0, 0.0, 1.0, -5.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1, 1, 0, 0])
    err = torch.tensor([0.2, 0.4], dtype=torch.float64)
    loss, rank, order = alrp_cls(s, y, err)
    # positive 0 (s=2): H(0-2)=0, neg H(1-2)=0 -> rank 1, N_FP 0
    # positive 1 (s=0): pos H(2)=1, neg H(1)=1 -> rank+ 2, N_FP 1, rank 3, E = 0.2
    torch.testing.assert_close(rank, torch.tensor([1.0, 3.0], dtype=torch.float64))
    assert order.tolist() == [1, 0]
    torch.testing.assert_close(loss, torch.tensor(1 - (1 + 2 / 3) / 2, dtype=torch.float64))
    loss.backward()
    g1 = (1 + 0.2) / 3 / 2
    torch.testing.assert_close(s.grad, torch.tensor([0, -g1, g1, 0], dtype=torch.float64))
    e = err.clone().requires_grad_()
    loc = alrp_loc(e, rank, order)
    # descending: pos 0 (cum 0.2, rank 1), pos 1 (cum 0.6, rank 3)
    torch.testing.assert_close(loc, torch.tensor((0.2 + 0.6 / 3) / 2, dtype=torch.float64))
    loc.backward()
    torch.testing.assert_close(
        e.grad, torch.tensor([(1 + 1 / 3) / 2, 1 / 3 / 2], dtype=torch.float64)
    )


def test_no_positive_gives_zero_attached_to_graph():
    s = torch.randn(10, requires_grad=True)
    y = torch.zeros(10, dtype=torch.long)
    loss, rank, order = alrp_cls(s, y, torch.zeros(0))
    assert loss.item() == 0 and loss.requires_grad and rank.numel() == 0 and order.numel() == 0
    e = torch.zeros(0, requires_grad=True)
    loc = alrp_loc(e, rank, order)
    assert loc.item() == 0 and loc.requires_grad
    ap = ap_loss(s, y)
    assert ap.item() == 0 and ap.requires_grad
    (loss + ap).backward()
    assert torch.all(s.grad == 0)


def test_bad_inputs():
    s, y = torch.randn(6), torch.tensor([1, 0, 0, 1, -1, 0])
    with pytest.raises(ValueError, match="one entry per positive"):
        alrp_cls(s, y, torch.zeros(3))
    with pytest.raises(ValueError, match="same number"):
        alrp_cls(s, y[:5], torch.zeros(2))
    with pytest.raises(ValueError, match="impl"):
        ap_loss(s, y, impl="fast")
    with pytest.raises(ValueError, match="integer"):
        ap_loss(s, y.float())
    with pytest.raises(ValueError, match="delta"):
        ap_loss(s, y, delta=0)


def test_grad_output_scales_and_half_inputs():
    s, y, err = _case(7)
    x = s.float().requires_grad_()
    loss, _, _ = alrp_cls(x, y, err.float())
    (3 * loss).backward()
    x2 = s.float().requires_grad_()
    alrp_cls(x2, y, err.float())[0].backward()
    torch.testing.assert_close(x.grad, 3 * x2.grad)
    h = s.half().requires_grad_()
    loss_h, rank_h, _ = alrp_cls(h, y, err.half())
    loss_h.backward()
    assert loss_h.dtype == torch.float32 and h.grad.dtype == torch.float16
    assert torch.isfinite(h.grad).all()


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_device_and_float32(device, bands):
    s, y, err = _case(500, num=20000, device=device)
    ref = _run_alrp(s.cpu(), y.cpu(), err.cpu(), "sorted")
    out = _run_alrp(s.float(), y, err.float(), "sorted")
    torch.testing.assert_close(out[3].cpu().double(), ref[3], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out[1].cpu().double(), ref[1], atol=1e-3, rtol=1e-5)


def test_grid_bucketize_equals_search():
    from d2_boxunc.losses.alrp_loss import _bucketize

    g = torch.Generator().manual_seed(3)
    u = torch.randn(300, generator=g, dtype=torch.float64)
    u[:100] = u[100:200].round(decimals=1)  # ties and crowded cells
    u[200:203] = u.max()  # the top cell crowded too
    u[203:206] = u.min()  # and the bottom one
    edges = torch.sort(torch.cat([u - 1, u + 1])).values
    v = torch.cat(
        [
            torch.randn(20000, generator=g, dtype=torch.float64) * 3,
            edges,
            edges.nextafter(edges + 1),
            edges.nextafter(edges - 1),
        ]
    )
    v = torch.cat(
        [
            v,
            edges[-1] + torch.rand(100, generator=g, dtype=torch.float64) * 5,
            edges[0] - torch.rand(100, generator=g, dtype=torch.float64) * 5,
        ]
    )
    assert torch.equal(_bucketize(v, edges), torch.bucketize(v, edges))
    v32, e32 = v.float(), edges.float()
    assert torch.equal(_bucketize(v32, e32), torch.bucketize(v32, e32))


@pytest.mark.parametrize("num_pos", [3, 40])
def test_sorted_equals_loop_when_few_negatives_are_relevant(num_pos, bands):
    """Late in training most negatives sit far below every positive (the fallback gathers them)."""
    s, y, err = _case(num_pos, num=3000, seed=2)
    s = torch.where(y == 1, s + 4, s - 4)
    ref = _run_alrp(s, y, err, "loop")
    out = _run_alrp(s, y, err, "sorted")
    torch.testing.assert_close(out[3], ref[3], atol=ATOL, rtol=0)
    torch.testing.assert_close(out[1], ref[1], atol=ATOL, rtol=0)
    torch.testing.assert_close(
        _run_ap(s, y, "sorted")[1], _run_ap(s, y, "loop")[1], atol=ATOL, rtol=0
    )


def _band_edges(u, dtype):
    """The sorted band edges (delta 1) of positives ``u``, in ``dtype``."""
    return torch.sort(torch.cat([u - 1, u + 1])).values.to(dtype)


@needs_ops
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layout", ["spread", "crowded", "all_equal"])
def test_band_kernel_buckets_equal_bucketize(dtype, layout):
    """The O(1) grid lookup of the kernels gives exactly torch.bucketize's buckets: values on,
    just above and just below every edge, far outside, in crowded cells and with equal edges."""
    g = torch.Generator().manual_seed(4)
    u = torch.randn(300, generator=g, dtype=torch.float64)
    if layout == "crowded":
        u[:150] = u[150:].round(decimals=1)
        u[:20] = u.max()
    elif layout == "all_equal":
        u[:] = 0.3
    e = _band_edges(u, dtype)
    v = torch.cat(
        [
            torch.randn(20000, generator=g, dtype=torch.float64) * 3,
            e.double(),
            e.double() + 40,
            e.double() - 40,
        ]
    ).to(dtype)
    v = torch.cat([v, e, e.nextafter(e + 1), e.nextafter(e - 1)])
    y = torch.zeros(v.numel(), dtype=torch.int8)
    y[::7] = 1  # not negatives: skipped
    cnt, tot = torch.ops.d2_boxunc.alrp_band_stats(v, y, e)
    neg = v[y == 0]
    ref_bucket = torch.bucketize(neg, e)
    ref_cnt = torch.bincount(ref_bucket, minlength=e.numel() + 1).double()
    ref_tot = torch.zeros(e.numel() + 1, dtype=torch.float64).index_add_(
        0, ref_bucket, neg.double()
    )
    assert torch.equal(cnt[:-1], ref_cnt) and cnt[-1] == 0
    torch.testing.assert_close(tot, ref_tot, atol=1e-9, rtol=1e-12)
    # gradient pass: the bucket's affine function on negatives, 0 elsewhere
    offset = torch.randn(e.numel() + 1, generator=g, dtype=torch.float64)
    slope = torch.randn(e.numel() + 1, generator=g, dtype=torch.float64)
    grad = torch.ops.d2_boxunc.alrp_band_grad(v, y, e, offset, slope)
    assert grad.dtype == dtype and torch.all(grad[y != 0] == 0)
    expect = (offset[ref_bucket] + neg.double() * slope[ref_bucket]).to(dtype)
    assert torch.equal(grad[y == 0], expect)


@needs_ops
def test_band_ops_opcheck():
    u = torch.randn(20, dtype=torch.float64)
    e = _band_edges(u, torch.float32)
    v = torch.randn(500)
    y = torch.randint(-1, 2, (500,))
    torch.library.opcheck(torch.ops.d2_boxunc.alrp_band_stats, (v, y, e))
    coef = torch.randn(e.numel() + 1, dtype=torch.float64)
    torch.library.opcheck(torch.ops.d2_boxunc.alrp_band_grad, (v, y, e, coef, coef.flip(0)))
    with pytest.raises(RuntimeError, match="ascending"):
        torch.ops.d2_boxunc.alrp_band_stats(v, y, e.flip(0))
    with pytest.raises(RuntimeError, match="integer"):
        torch.ops.d2_boxunc.alrp_band_stats(v, y.float(), e)


@pytest.mark.parametrize("where", ["negative", "positive"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_logits_raise(where, value, bands):
    s, y, err = _case(7)
    s[torch.nonzero(y == (0 if where == "negative" else 1))[0]] = value
    with pytest.raises(ValueError, match="NaN or inf"):
        alrp_cls(s, y, err)
    with pytest.raises(ValueError, match="NaN or inf"):
        ap_loss(s, y)


@pytest.mark.parametrize("impl", ["sorted", "loop"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), -0.1, 2.5])
def test_loc_err_must_be_finite_and_in_0_2(bad, impl):
    # NaN used to give a finite loss with NaN gradients; a negative error flips an update
    s, y, err = _case(7)
    err[3] = bad
    with pytest.raises(ValueError, match=r"loc_err must be finite and in \[0, 2\].*1 of 7"):
        alrp_cls(s, y, err, impl=impl)


def test_loc_err_range_ends_and_rounding_are_accepted():
    s, y, err = _case(7)
    # the ends: 2 (1 - IoU) = 2 at IoU 0; 1 - GIoU a few ulps below 0 for a near-perfect box
    err[:3] = torch.tensor([0.0, 2.0, -1e-7], dtype=err.dtype)
    x = s.clone().requires_grad_()
    loss, _, _ = alrp_cls(x, y, err)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    alrp_cls(s.half(), y, err.half())  # half rounding of 2.0 and of small values


def test_max_loc_err_widens_the_range():
    """An RPN at tau = 0.7 divides 1 - GIoU by 0.6: errors up to 2 / 0.6 are accepted there, and
    the value and gradients depend on the errors as they are (no clipping)."""
    s, y, err = _case(7)
    err[2] = 3.0
    with pytest.raises(ValueError, match=r"in \[0, 2\]"):
        alrp_cls(s, y, err)
    loss, rank, order = alrp_cls(s, y, err, max_loc_err=2 / 0.6)
    ref = alrp_cls(s, y, err, max_loc_err=2 / 0.6, impl="loop")
    assert torch.allclose(loss, ref[0]) and torch.allclose(rank, ref[1])
    with pytest.raises(ValueError, match=r"in \[0, 3\.33333\]"):
        alrp_cls(s, y, err * 2, max_loc_err=2 / 0.6)
    with pytest.raises(ValueError, match="max_loc_err must be > 0"):
        alrp_cls(s, y, err, max_loc_err=0.0)


@pytest.mark.needs_cuda
def test_loc_err_check_on_cuda_does_not_sync():
    err = torch.rand(7, device="cuda") * 2
    torch.cuda.set_sync_debug_mode("error")
    try:
        alrp_module._check_loc_err(err)  # a device-side assert: no host read
    finally:
        torch.cuda.set_sync_debug_mode("default")
