"""aLRP Loss (Oksuz et al., NeurIPS 2020) and AP Loss (Chen et al.) with exact, fast ranking.

Design: docs/design.md#alrp-loss-and-ap-loss. Logits ``s (M,)`` and labels ``y (M,)`` are the
whole per-GPU batch flattened over images, anchors and classes: ``y == 1`` marks positives ``P``,
``y == 0`` negatives ``N``, anything else is ignored (no value, zero gradient). With the smoothed
step ``H(x) = clamp(x / (2 delta) + 1/2, 0, 1)`` and, for ``i in P``,

    N_FP(i)  = sum_{j in N} H(s_j - s_i)
    rank+(i) = 1 + sum_{k in P, k != i} H(s_k - s_i)
    rank(i)  = rank+(i) + N_FP(i)
    E(i)     = sum_{k in P, k != i} H(s_k - s_i) eps_k

aLRP's classification value is ``1 - mean rank+/rank``; its gradient is the error-driven update of
docs/design.md#alrp-values-and-update, not the autograd gradient. AP Loss
(docs/design.md#ap-loss) uses interpolated precision instead.

Two implementations compute the same numbers:

- ``impl="loop"``: one Python iteration per positive, as the reference code does
  (O(|P| (|P| + |N|)) work, ~10 kernel launches per positive). Kept as the test oracle.
- ``impl="sorted"`` (default; docs/design.md#fast-exact-ranking). Only the positive logits are
  sorted. Every negative is put into one of the ``2|P| + 1`` buckets cut by the band edges
  ``s_i +- delta``; inside a bucket each ``H(s_j - s_i)`` is either 0, 1 or the same affine
  function of ``s_j``, so per-bucket counts and sums of ``s_j`` (float64, prefix-summed) give every
  ``N_FP(i)``, and per-bucket affine coefficients give every negative's gradient. Positive-positive
  terms are band queries on the sorted positives. With the compiled ops (CPU, CUDA) the negatives
  take two streaming passes of ``d2_boxunc::alrp_band_stats`` / ``alrp_band_grad``, bucketing each
  value in O(1) through a grid table; without them (or on another device) the same buckets come
  from PyTorch ops. No Python loop, no ``.cuda()``, any device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from d2_boxunc import ops  # noqa: F401  (fake kernels of the band ops)
from d2_boxunc._extension import cuda_version, has_ops, host_value_checks

__all__ = ["alrp_cls", "alrp_loc", "ap_loss"]

_IMPLS = ("sorted", "loop")


# ------------------------------------------------------------------------------------------------
# input handling
# ------------------------------------------------------------------------------------------------
def _check(logits: Tensor, labels: Tensor, delta: float, impl: str, fn: str) -> None:
    if not isinstance(logits, Tensor) or not isinstance(labels, Tensor):
        raise ValueError(f"{fn}: logits and labels must be tensors")
    if logits.numel() != labels.numel():
        raise ValueError(
            f"{fn}: logits and labels must have the same number of elements, got "
            f"{tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    if not logits.is_floating_point():
        raise ValueError(f"{fn}: logits must be floating point, got {logits.dtype}")
    if labels.is_floating_point():
        raise ValueError(f"{fn}: labels must be integer (1 positive, 0 negative, else ignored)")
    if not delta > 0:
        raise ValueError(f"{fn}: delta must be > 0, got {delta}")
    if impl not in _IMPLS:
        raise ValueError(f"{fn}: impl must be one of {_IMPLS}, got {impl!r}")


# eps_i as the callers compute it: 1 - GIoU in [0, 2) (RetinaNet, R-CNN head), or 2 (1 - IoU), the
# paper's (1 - IoU) / (1 - tau) at tau = 0.5, in [0, 2]; an RPN with positives at IoU >= 0.7
# divides 1 - GIoU by 2 (1 - 0.7) (max_loc_err = 2 / 0.6). The slack absorbs rounding (fvcore's
# 1 - GIoU of a near-perfect box can come out a few ulps below 0).
_LOC_ERR_MAX = 2.0
_LOC_ERR_SLACK = 1e-5


def _check_loc_err(loc_err: Tensor, max_loc_err: float = _LOC_ERR_MAX) -> None:
    """``loc_err`` must be finite and in ``[0, max_loc_err]``: a NaN there leaves the loss value
    finite (it does not depend on ``loc_err``) but turns the gradients NaN through the prefix sums
    of ``E``, and a negative error can reverse a positive's update.

    CPU tensors are checked on the host (no device to wait for), for a ValueError that counts and
    shows the bad values, like the other input errors here; ``torch._assert_async`` would give a
    RuntimeError with the fixed message only. Other devices (and traced code) use
    ``torch._assert_async`` so that nothing waits on the device: a bad value there is a
    device-side assert, which ends the process (as a NaN loss would end training).
    """
    err = loc_err.detach()
    if err.numel() == 0:
        return
    tol = 0.0
    if err.is_floating_point():  # float16/bfloat16 round coarser: a few of their ulps
        tol = max(_LOC_ERR_SLACK, 4 * torch.finfo(err.dtype).eps)
    ok = (err >= -tol) & (err <= max_loc_err + tol)  # False for NaN and inf
    msg = (
        f"alrp_cls: loc_err must be finite and in [0, {max_loc_err:g}] (1 - GIoU, or 2 (1 - IoU), "
        "divided by 2 (1 - tau) at a positive IoU threshold tau other than 0.5)"
    )
    if err.device.type != "cpu" or torch.compiler.is_compiling():
        torch._assert_async(ok.all(), msg)
        return
    if not bool(ok.all()):
        bad = err[~ok]
        raise ValueError(
            f"{msg}; {bad.numel()} of {err.numel()} values are not, e.g. {bad[0].item():g}"
        )


def _H(x: Tensor, delta: float) -> Tensor:
    return torch.clamp(x / (2 * delta) + 0.5, min=0, max=1)


# ------------------------------------------------------------------------------------------------
# the fast path (docs/design.md#fast-exact-ranking)
# ------------------------------------------------------------------------------------------------
def _band_sum(v: Tensor, w: Tensor | None, t: Tensor, delta: float) -> Tensor:
    """``sum_k w_k H(v_k - t_q)`` for every query ``t_q``; ``v`` ascending (float64)."""
    if w is None:
        w = torch.ones_like(v)
    zero = v.new_zeros(1)
    W0 = torch.cat([zero, torch.cumsum(w, 0)])
    W1 = torch.cat([zero, torch.cumsum(w * v, 0)])
    lo = torch.searchsorted(v, t - delta, right=True)  # v <= t - delta: H = 0
    hi = torch.searchsorted(v, t + delta, right=False)  # v >= t + delta: H = 1
    n0 = W0[hi] - W0[lo]
    return (W0[-1] - W0[hi]) + ((W1[hi] - W1[lo]) - t * n0) / (2 * delta) + n0 / 2


def _bucketize(v: Tensor, e: Tensor) -> Tensor:
    """``torch.bucketize(v, e)`` (the number of edges ``< v``) for ascending ``e``, in O(1) per value.

    A binary search costs ~log2(2|P|) dependent loads per value and dominates the loss at 10^7
    logits. Instead, cut ``[e[0], e[-1]]`` into ``16 |e|`` equal cells; ``cell(x)`` is monotone
    in ``x`` (a subtraction, a multiplication by a positive constant and a floor are monotone in
    floating point), so every edge in an earlier cell is ``< v`` and every edge in a later cell is
    ``> v``: a value's bucket is the number of edges in earlier cells plus a comparison with the
    edge of its own cell. Values in the few cells holding several edges fall back to the search.
    """
    n = e.numel()
    lo, hi = e[0], e[-1]
    if n < 8 or not bool(hi > lo):
        return torch.bucketize(v, e)
    cells = 16 * n  # cell `cells` holds everything from e[-1] up (with e[-1] itself, or not)
    scale = cells / (hi - lo)

    def cell(x):
        return ((x - lo) * scale).floor_().clamp_(0, cells).int()  # int32: half the traffic

    per_cell = torch.bincount(cell(e), minlength=cells + 1)
    first = (torch.cumsum(per_cell, 0) - per_cell).int()  # edges in earlier cells
    cv = cell(v)
    f = first.index_select(0, cv)
    e_pad = torch.cat([e, e.new_full((1,), float("inf"))])
    b = (f + (e_pad.index_select(0, f) < v)).long()
    crowded = per_cell > 1
    if bool(crowded.any()):
        # values <= e[0] are right (0) whatever their cell: keep the low tail out of the search
        redo = torch.nonzero(crowded.index_select(0, cv) & (v > lo)).squeeze(1)
        if redo.numel():
            b[redo] = torch.bucketize(v[redo], e)
    return b


class _Bands:
    """Negatives bucketed by the band edges ``u_i +- delta`` of the positives ``u``.

    Bucket ``b`` holds the values with ``e[b-1] < s <= e[b]`` (``e`` = the sorted edges). For a
    positive with edges at positions ``a`` (``u - delta``) and ``c`` (``u + delta``) in ``e``,
    buckets ``<= a`` lie where ``H = 0``, buckets ``a+1..c`` on its linear part and buckets ``> c``
    where ``H = 1``; ``H`` is continuous, so a value on an edge may fall in either neighbour.
    Subclasses fill ``C``/``S`` (prefix sums of the per-bucket count and value sum, float64) and
    turn per-bucket ``(offset, slope)`` into the negatives' gradients.
    """

    def __init__(self, u: Tensor, delta: float):
        self.delta = delta
        self.edges = torch.sort(torch.cat([u - delta, u + delta])).values
        self.a = torch.searchsorted(self.edges, u - delta)
        self.c = torch.searchsorted(self.edges, u + delta)
        self.nb = self.edges.numel() + 1

    def _prefix(self, cnt: Tensor, tot: Tensor) -> None:
        zero = cnt.new_zeros(1)
        self.C = torch.cat([zero, torch.cumsum(cnt, 0)])
        self.S = torch.cat([zero, torch.cumsum(tot, 0)])

    def soft_count(self, u: Tensor) -> Tensor:
        """``N_FP(i) = sum_j H(s_j - u_i)`` for every positive."""
        a1, c1 = self.a + 1, self.c + 1
        above = self.C[-1] - self.C[c1]
        n_band = self.C[c1] - self.C[a1]
        s_band = self.S[c1] - self.S[a1]
        return above + (s_band - u * n_band) / (2 * self.delta) + n_band / 2

    def _coefficients(self, coef: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        """Per-bucket ``(offset, slope)`` with ``sum_i coef_i H(s - u_i) = offset + s * slope``."""
        nb, a1, c1 = self.nb, self.a + 1, self.c + 1
        full = torch.zeros(nb, dtype=torch.float64, device=u.device).index_add_(0, c1, coef)
        slope = torch.zeros_like(full).index_add_(0, a1, coef).index_add_(0, c1, -coef)
        icpt_c = coef * (0.5 - u / (2 * self.delta))
        icpt = torch.zeros_like(full).index_add_(0, a1, icpt_c).index_add_(0, c1, -icpt_c)
        offset = torch.cumsum(full, 0) + torch.cumsum(icpt, 0)
        return offset, torch.cumsum(slope, 0) / (2 * self.delta)


class _TorchBands(_Bands):
    """Pure-PyTorch bands (any device; the fallback without the compiled ops). ``s`` are the
    values (float32 or float64); ``neg`` (bool, or None = all) marks the negatives among them."""

    def __init__(self, s: Tensor, neg: Tensor | None, u: Tensor, delta: float):
        super().__init__(u, delta)
        self.s = s
        # float32 values are compared with the edges rounded to float32: rounding is monotone,
        # so the buckets can only differ for values within half an ulp of an edge, where H is
        # continuous (the float64 path is exact)
        bucket = _bucketize(s, self.edges.to(s.dtype))
        if neg is not None:  # non-negatives go to an extra bucket whose coefficients are 0
            bucket = torch.where(neg, bucket, self.nb)
        self.bucket = bucket
        cnt = torch.bincount(bucket, minlength=self.nb + 1)[: self.nb].double()
        tot = torch.bincount(bucket, weights=s.double(), minlength=self.nb + 1)[: self.nb]
        self._prefix(cnt, tot)

    def weighted_step(self, coef: Tensor, u: Tensor) -> Tensor:
        """``sum_i coef_i H(s_j - u_i)`` for every value ``j`` (an affine function per bucket)."""
        offset, slope = self._coefficients(coef, u)
        zero = offset.new_zeros(1)  # the extra bucket of non-negatives
        offset, slope = torch.cat([offset, zero]), torch.cat([slope, zero])
        b = self.bucket
        return offset.index_select(0, b) + self.s * slope.index_select(0, b)


class _CompiledBands(_Bands):
    """Bands from the compiled ``d2_boxunc::alrp_band_*`` kernels: one pass over all logits for
    the statistics and one for the gradients, each value bucketed in O(1) through a grid of
    ``32 |e|`` cells (no gathered copies, no per-value index tensors).

    ``s`` are all values, ``y`` their labels (0 = negative); the gradient is 0 off the negatives.
    """

    def __init__(self, s: Tensor, y: Tensor, u: Tensor, delta: float, fn: str):
        super().__init__(u, delta)
        self.s, self.y = s, y
        # values are compared with the edges rounded to their dtype (see _TorchBands)
        self.e = self.edges.to(s.dtype)
        cnt, tot = torch.ops.d2_boxunc.alrp_band_stats(s, y, self.e)
        if not host_value_checks(cnt):  # CUDA: no sync (docs/gpu.md#host-syncs)
            torch._assert_async(cnt[-1] == 0, f"{fn}: negative logit(s) are NaN or infinite")
        elif bool(cnt[-1] > 0):
            raise ValueError(f"{fn}: {int(cnt[-1])} negative logit(s) are NaN or infinite")
        self._prefix(cnt[:-1], tot)

    def weighted_step(self, coef: Tensor, u: Tensor) -> Tensor:
        offset, slope = self._coefficients(coef, u)
        return torch.ops.d2_boxunc.alrp_band_grad(self.s, self.y, self.e, offset, slope)


def _use_compiled(s: Tensor) -> bool:
    if not has_ops():
        return False
    return s.device.type == "cpu" or (s.is_cuda and cuda_version() != -1)


def _split(logits: Tensor, labels: Tensor, pos_idx: Tensor, delta: float, fn: str):
    """Positives (index, float64 logit) and the bands of the negatives.

    Compiled path: the kernels read all logits and labels. Pure-PyTorch path: only the negatives
    that can matter (``s > min_P - delta``; the others have ``H = 0`` for every positive),
    gathered when they are few, else all values with a 0/1 weight (early in training nearly every
    negative is relevant, and gathering 10^7 values costs more). Returns ``(s, u, neg_idx, bands)``;
    ``neg_idx`` is None when the bands' gradient covers every value. A non-finite negative logit is
    a ValueError on both paths (the kernels count them in their statistics pass).
    """
    s = logits.reshape(-1)
    y = labels.reshape(-1)
    u = s[pos_idx].double()
    if not host_value_checks(u):  # CUDA: no sync (docs/gpu.md#host-syncs)
        torch._assert_async(
            torch.isfinite(u).all(), f"{fn}: the logits of the positives contain NaN or infinity"
        )
    elif not bool(torch.isfinite(u).all()):
        raise ValueError(f"{fn}: the logits of the positives contain NaN or infinity")
    if _use_compiled(s):
        if y.dtype == torch.bool:
            y = y.view(torch.uint8)
        return s, u, None, _CompiledBands(s.contiguous(), y.contiguous(), u, delta, fn)
    neg = y == 0
    bad = int(torch.count_nonzero(neg & ~torch.isfinite(s)))
    if bad:
        raise ValueError(f"{fn}: {bad} negative logit(s) are NaN or infinite")
    thr = (u.min() - delta).to(s.dtype)
    relevant = neg & (s > thr)
    if 2 * int(torch.count_nonzero(relevant)) < s.numel():
        neg_idx = torch.nonzero(relevant).squeeze(1)
        return s, u, neg_idx, _TorchBands(s[neg_idx], None, u, delta)
    return s, u, None, _TorchBands(s, neg, u, delta)


def _scatter_grad(s, pos_idx, pos_grad, neg_idx, neg_grad):
    if neg_idx is None:  # zero already outside the negatives
        grad = neg_grad.to(s.dtype)
    else:
        grad = torch.zeros_like(s)
        grad[neg_idx] = neg_grad.to(s.dtype)
    grad[pos_idx] = pos_grad.to(s.dtype)
    return grad


def _alrp_sorted(logits, labels, pos_idx, loc_err, delta, eps):
    s, u, neg_idx, bands = _split(logits, labels, pos_idx, delta, "alrp_cls")
    P = pos_idx.numel()
    err = loc_err.reshape(-1).detach().double()
    order = torch.argsort(u, stable=True)
    u_sorted = u[order]
    n_fp = bands.soft_count(u)
    rank_pos = 1 + _band_sum(u_sorted, None, u, delta) - 0.5  # drop the self term H(0) = 1/2
    rank = rank_pos + n_fp
    E = _band_sum(u_sorted, err[order], u, delta) - err / 2
    active = n_fp > eps
    pos_grad = torch.where(active, -(n_fp + E) / rank, torch.zeros_like(rank))
    coef = torch.where(active, -pos_grad / n_fp.clamp_min(eps), torch.zeros_like(rank))
    neg_grad = bands.weighted_step(coef / P, u)
    grad = _scatter_grad(s, pos_idx, pos_grad / P, neg_idx, neg_grad)
    loss = 1 - (rank_pos / rank).mean()
    return loss, rank, order, grad


def _ap_sorted(logits, labels, pos_idx, delta):
    s, u, neg_idx, bands = _split(logits, labels, pos_idx, delta, "ap_loss")
    P = pos_idx.numel()
    order = torch.argsort(u, stable=True)
    u_sorted = u[order]
    n_fp = bands.soft_count(u)
    rank_pos = 1 + _band_sum(u_sorted, None, u, delta) - 0.5
    rank = rank_pos + n_fp
    prec = rank_pos / rank
    # interpolated precision: running max in ascending score order (lower-scored positives first)
    ip = torch.empty_like(prec)
    ip[order] = torch.cummax(prec[order], 0).values
    sets_max = prec >= ip
    ratio = torch.where(sets_max, torch.ones_like(prec), (1 - ip) / (1 - prec).clamp_min(1e-300))
    neg_grad = bands.weighted_step(ratio / rank / P, u)
    grad = _scatter_grad(s, pos_idx, -(1 - ip) / P, neg_idx, neg_grad)
    loss = 1 - ip.mean()
    return loss, grad


# ------------------------------------------------------------------------------------------------
# the reference loop (oracle)
# ------------------------------------------------------------------------------------------------
def _loop_inputs(logits, labels, delta):
    """Flat detached logits, the positive mask and logits, the relevant negatives (those within
    delta of the lowest positive) and their logits: what both reference loops start from."""
    s = logits.reshape(-1).detach()
    y = labels.reshape(-1)
    fg = y == 1
    fg_logits = s[fg]
    bg = (y == 0) & (s >= fg_logits.min() - delta)
    return s, fg, fg_logits, bg, s[bg]


def _alrp_loop(logits, labels, pos_idx, loc_err, delta, eps):
    s, fg, fg_logits, bg, bg_logits = _loop_inputs(logits, labels, delta)
    err = loc_err.reshape(-1).detach().to(s.dtype)
    grad = torch.zeros_like(s)
    P = fg_logits.numel()
    bg_grad = torch.zeros_like(bg_logits)
    rank = torch.zeros_like(fg_logits)
    prec = torch.zeros_like(fg_logits)
    fg_grad = torch.zeros_like(fg_logits)
    order = torch.argsort(fg_logits, stable=True)
    for i in order.tolist():
        fg_rel = _H(fg_logits - fg_logits[i], delta)
        fg_rel[i] = 0
        bg_rel = _H(bg_logits - fg_logits[i], delta)
        rank_pos = 1 + fg_rel.sum()
        n_fp = bg_rel.sum()
        rank[i] = rank_pos + n_fp
        prec[i] = rank_pos / rank[i]
        if n_fp > eps:
            fg_grad[i] = -((fg_rel * err).sum() + n_fp) / rank[i]
            bg_grad += bg_rel * (-fg_grad[i] / n_fp)
    grad[fg] = fg_grad
    grad[bg] = bg_grad
    grad /= P
    return 1 - prec.mean(), rank, order, grad


def _ap_loop(logits, labels, pos_idx, delta):
    s, fg, fg_logits, bg, bg_logits = _loop_inputs(logits, labels, delta)
    grad = torch.zeros_like(s)
    P = fg_logits.numel()
    bg_grad = torch.zeros_like(bg_logits)
    prec = torch.zeros_like(fg_logits)
    fg_grad = torch.zeros_like(fg_logits)
    max_prec = 0.0
    for i in torch.argsort(fg_logits, stable=True).tolist():
        fg_rel = _H(fg_logits - fg_logits[i], delta)
        fg_rel[i] = 0
        bg_rel = _H(bg_logits - fg_logits[i], delta)
        rank_pos = 1 + fg_rel.sum()
        rank = rank_pos + bg_rel.sum()
        cur = rank_pos / rank
        if max_prec <= cur:
            max_prec = cur
            bg_grad += bg_rel / rank
        else:
            bg_grad += bg_rel / rank * ((1 - max_prec) / (1 - cur))
        fg_grad[i] = -(1 - max_prec)
        prec[i] = max_prec
    grad[fg] = fg_grad
    grad[bg] = bg_grad
    grad /= P
    return 1 - prec.mean(), grad


# ------------------------------------------------------------------------------------------------
# autograd wiring: the forward stores the update, the backward hands it out
# (docs/design.md#alrp-values-and-update)
# ------------------------------------------------------------------------------------------------
class _ALRPCls(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, labels, pos_idx, loc_err, delta, eps, impl):
        with torch.no_grad():
            fn = _alrp_sorted if impl == "sorted" else _alrp_loop
            loss, rank, order, grad = fn(logits, labels, pos_idx, loc_err, delta, eps)
        ctx.save_for_backward(grad.view_as(logits))
        rank = rank.to(logits.dtype)
        ctx.mark_non_differentiable(rank, order)
        return loss.to(logits.dtype), rank, order

    @staticmethod
    def backward(ctx, grad_loss, grad_rank, grad_order):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss, None, None, None, None, None, None


class _APLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, labels, pos_idx, delta, impl):
        with torch.no_grad():
            fn = _ap_sorted if impl == "sorted" else _ap_loop
            loss, grad = fn(logits, labels, pos_idx, delta)
        ctx.save_for_backward(grad.view_as(logits))
        return loss.to(logits.dtype)

    @staticmethod
    def backward(ctx, grad_loss):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss, None, None, None, None


def _positives(labels: Tensor) -> Tensor:
    """Flat indices of the positives (label 1), found once per call."""
    return torch.nonzero(labels.reshape(-1) == 1).squeeze(1)


def _as_compute_dtype(logits: Tensor) -> Tensor:
    # fp16/bf16 (AMP) logits: rank in fp32 at least (the prefix sums are fp64 anyway)
    return logits if logits.dtype in (torch.float32, torch.float64) else logits.float()


# ------------------------------------------------------------------------------------------------
# public API
# ------------------------------------------------------------------------------------------------
def alrp_cls(
    logits: Tensor,
    labels: Tensor,
    loc_err: Tensor,
    delta: float = 1.0,
    eps: float = 1e-5,
    impl: str = "sorted",
    max_loc_err: float = _LOC_ERR_MAX,
) -> tuple[Tensor, Tensor, Tensor]:
    """Classification component of aLRP Loss with its error-driven update
    (docs/design.md#alrp-values-and-update).

    Args:
        logits (Tensor[M] or any shape): classification logits of the whole batch, flattened
            over images, anchors and classes.
        labels (Tensor, M elements, integer): 1 positive, 0 negative, anything else ignored.
        loc_err (Tensor[|P|]): localisation error ``eps_i`` in ``[0, max_loc_err]`` of each
            positive, in the order the positives appear in ``logits`` (``1 - GIoU``, or
            ``2 (1 - IoU)``, i.e. the paper's ``(1 - IoU) / (1 - tau)`` at ``tau = 0.5``). Used as a
            constant. NaN, inf or a value outside ``[0, max_loc_err]`` (beyond a rounding slack:
            1e-5, a few ulps in float16) is a ValueError on the CPU and a device-side assert (no
            host sync) elsewhere.
        delta: half-width of the smoothed step on logits. Default: 1.0.
        eps: a positive with ``N_FP <= eps`` gets no gradient. Default: 1e-5.
        impl: ``"sorted"`` (fast, exact) or ``"loop"`` (reference loop). Default: "sorted".
        max_loc_err: upper end of the accepted ``loc_err`` range. Default: 2. An RPN whose
            positives have IoU >= 0.7 uses ``(1 - GIoU) / (2 (1 - 0.7))``, at most ``2 / 0.6``.

    Returns:
        (loss, rank, order): ``loss`` = ``1 - mean rank+/rank``, a scalar whose backward delivers
        ``dL/ds_i = -(N_FP(i) + E(i)) / (|P| rank(i))`` to positives (0 when ``N_FP(i) <= eps``) and
        ``dL/ds_j = (1/|P|) sum_i (N_FP(i) + E(i)) / rank(i) * H(s_j - s_i) / N_FP(i)`` to
        negatives; ``rank`` (Tensor[|P|], detached, positives' order) and ``order``
        (LongTensor[|P|], ascending-logit argsort of the positives, ties by index) for
        :func:`alrp_loc`. No positive: ``loss = 0 * logits.sum()`` and empty ``rank``/``order``.
    """
    _check(logits, labels, delta, impl, "alrp_cls")
    logits = _as_compute_dtype(logits)
    pos_idx = _positives(labels)
    num_pos = pos_idx.numel()
    if loc_err.numel() != num_pos:
        raise ValueError(
            f"alrp_cls: loc_err must have one entry per positive ({num_pos}), got {loc_err.numel()}"
        )
    if not max_loc_err > 0:
        raise ValueError(f"alrp_cls: max_loc_err must be > 0, got {max_loc_err}")
    _check_loc_err(loc_err, float(max_loc_err))
    if num_pos == 0:
        empty = logits.new_zeros(0)
        return logits.sum() * 0, empty, torch.zeros(0, dtype=torch.long, device=logits.device)
    return _ALRPCls.apply(logits, labels, pos_idx, loc_err, float(delta), float(eps), impl)


def alrp_loc(loc_err: Tensor, rank: Tensor, order: Tensor) -> Tensor:
    """Localisation component of aLRP Loss (docs/design.md#alrp-values-and-update), before the SB
    weight.

    ``(1/|P|) sum_i (sum of eps_k over positives scoring at or above i, hard order) / rank(i)``,
    with ``rank`` and ``order`` from :func:`alrp_cls` (detached); autograd flows through
    ``loc_err`` only. No positive: ``0 * loc_err.sum()``.
    """
    if loc_err.numel() != rank.numel() or rank.numel() != order.numel():
        raise ValueError(
            f"alrp_loc: loc_err, rank and order must have equal lengths, got "
            f"{loc_err.numel()}, {rank.numel()}, {order.numel()}"
        )
    if loc_err.numel() == 0:
        return loc_err.sum() * 0
    desc = order.flip(0)
    err = loc_err.reshape(-1)[desc]
    return (torch.cumsum(err, 0) / rank.detach()[desc].to(err.dtype)).mean()


def ap_loss(logits: Tensor, labels: Tensor, delta: float = 1.0, impl: str = "sorted") -> Tensor:
    """AP Loss with interpolated precision, as in the aLRP codebase (docs/design.md#ap-loss).

    Value ``1 - mean ip(i)``; backward gives ``-(1 - ip(i))/|P|`` to positives and
    ``(1/|P|) sum_i c_i H(s_j - s_i)`` to negatives. Arguments as in :func:`alrp_cls`.
    No positive: ``0 * logits.sum()``.
    """
    _check(logits, labels, delta, impl, "ap_loss")
    logits = _as_compute_dtype(logits)
    pos_idx = _positives(labels)
    if pos_idx.numel() == 0:
        return logits.sum() * 0
    return _APLoss.apply(logits, labels, pos_idx, float(delta), impl)
