"""The op wrappers read no tensor values on the host for non-CPU tensors (docs/gpu.md#host-syncs).

On CUDA every such read (``.item()``, ``bool(t)``, ``.tolist()``, ``.cpu()``...) is a
device->host sync. Without a GPU, meta tensors under FakeTensorMode stand in for CUDA ones: they
are not CPU tensors (so the wrappers take their device path), they have no values (so any read
raises), and a TorchFunctionMode records every value-reading method called on them.
"""

import os

import pytest
import torch
from torch.fx.experimental.symbolic_shapes import ShapeEnv
from torch.overrides import TorchFunctionMode

from d2_boxunc import _extension
from d2_boxunc.layers import (
    batched_diou_nms,
    batched_iou_guided_nms,
    batched_kl_nms,
    batched_soft_nms,
    diou_nms,
    iou_guided_nms,
    kl_nms,
    prroi_pool,
    soft_nms,
    var_voting,
)
from d2_boxunc.modeling.roi_heads.iou_net_roi_heads import _refinement_maps
from tests.modeling.test_iou_net import IMAGE, STRIDES, make_heads

pytestmark = pytest.mark.skipif(not _extension.has_ops(), reason="needs d2_boxunc._C")

_READS = {
    torch.Tensor.item,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
    torch.Tensor.tolist,
    torch.Tensor.cpu,
    torch.Tensor.numpy,
}


# Ops whose output size depends on tensor values: on CUDA each copies a count to the host.
_DATA_DEPENDENT = {
    torch.nonzero,
    torch.Tensor.nonzero,
    torch.argwhere,
    torch.unique,
    torch.Tensor.unique,
    torch.unique_consecutive,
    torch.masked_select,
    torch.Tensor.masked_select,
    torch.bincount,
    torch.Tensor.bincount,
}
_INDEXING = {torch.Tensor.__getitem__, torch.Tensor.__setitem__}


def _bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


class _RecordReads(TorchFunctionMode):
    """Records value reads; with ``data_dependent=True`` also ops whose output shape depends on
    values (``nonzero``, ``unique``, boolean-mask indexing...), which sync on CUDA too."""

    def __init__(self, data_dependent=False):
        super().__init__()
        self.reads = []
        self.data_dependent = data_dependent

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _READS or (
            func is torch.Tensor.to and any(str(a) == "cpu" for a in (*args[1:], *kwargs.values()))
        ):
            self.reads.append(getattr(func, "__name__", str(func)))
        elif self.data_dependent and (
            func in _DATA_DEPENDENT or (func in _INDEXING and _bool_index(args[1]))
        ):
            self.reads.append(getattr(func, "__name__", str(func)))
        return func(*args, **kwargs)


def _calls(device):
    """Each wrapper on valid inputs of ``device`` (created inside the fake mode)."""
    n = 12

    def t(*shape, dtype=torch.float32):
        return torch.empty(shape, dtype=dtype, device=device)

    boxes, scores, ious, log_vars = t(n, 4), t(n), t(n), t(n, 4)
    idxs = torch.zeros(n, dtype=torch.long, device=device)
    feats = t(2, 8, 16, 16).requires_grad_()
    rois = t(5, 5).requires_grad_()
    return {
        "prroi_pool forward and backward": lambda: (
            prroi_pool(feats, rois, 7, 0.25).sum().backward()
        ),
        "prroi_pool list of boxes": lambda: prroi_pool(feats, [t(3, 4), t(2, 4)], (2, 3), 0.25),
        "soft_nms": lambda: soft_nms(boxes, scores),
        "batched_soft_nms": lambda: batched_soft_nms(boxes, scores, idxs, "linear"),
        "iou_guided_nms": lambda: iou_guided_nms(boxes, scores, ious, 0.5, multiply_cls=True),
        "batched_iou_guided_nms": lambda: batched_iou_guided_nms(boxes, scores, ious, idxs, 0.5),
        "diou_nms": lambda: diou_nms(boxes, scores, 0.5),
        "batched_diou_nms": lambda: batched_diou_nms(boxes, scores, idxs, 0.5),
        "var_voting": lambda: var_voting(boxes[:3], boxes, log_vars.exp()),
        "kl_nms": lambda: kl_nms(boxes, scores, log_vars),
        "batched_kl_nms": lambda: batched_kl_nms(boxes, scores, log_vars, idxs, soft=True),
    }


def _run_all_on_meta():
    """Runs every wrapper on meta tensors; returns {name: recorded reads or the error}."""
    found = {}
    names = list(_calls("meta"))
    for name in names:
        with torch._subclasses.FakeTensorMode(shape_env=ShapeEnv()), _RecordReads() as rec:
            try:
                _calls("meta")[name]()
            except Exception as e:  # a value read on a meta tensor raises
                rec.reads.append(f"{type(e).__name__}: {str(e).splitlines()[0][:120]}")
        if rec.reads:
            found[name] = rec.reads
    return found


def test_wrappers_read_no_values_of_device_tensors(monkeypatch):
    monkeypatch.delenv(_extension.CHECK_VALUES_ENV, raising=False)
    assert _run_all_on_meta() == {}


def test_the_debug_switch_turns_value_checks_on_and_the_recorder_sees_them(monkeypatch):
    """D2_BOXUNC_CHECK_VALUES=1 runs the value checks on every device: each of them reads values,
    which the test above would report (so it can fail)."""
    monkeypatch.setenv(_extension.CHECK_VALUES_ENV, "1")
    found = _run_all_on_meta()
    assert set(found) == set(_calls("meta")), found


def test_value_checks_default_to_cpu_tensors_only(monkeypatch):
    monkeypatch.delenv(_extension.CHECK_VALUES_ENV, raising=False)
    assert _extension.host_value_checks(torch.zeros(1))
    assert not _extension.host_value_checks(torch.zeros(1, device="meta"))
    monkeypatch.setenv(_extension.CHECK_VALUES_ENV, "0")
    assert not _extension.host_value_checks(torch.zeros(1))
    monkeypatch.setenv(_extension.CHECK_VALUES_ENV, "1")
    assert _extension.host_value_checks(torch.zeros(1, device="meta"))
    assert os.environ[_extension.CHECK_VALUES_ENV] == "1"


def test_cpu_value_checks_still_give_one_line_errors(monkeypatch):
    monkeypatch.delenv(_extension.CHECK_VALUES_ENV, raising=False)
    boxes = torch.tensor([[0.0, 0, 1, 1], [0, 0, float("nan"), 1]])
    with pytest.raises(ValueError, match="boxes must be finite"):
        soft_nms(boxes, torch.ones(2))
    feats = torch.zeros(1, 2, 4, 4)
    with pytest.raises(ValueError, match="batch index"):
        prroi_pool(feats, torch.tensor([[3.0, 0, 0, 2, 2]]), 2, 1.0)
    # Off (as on CUDA by default): every kernel still runs safely on non-finite values. soft-NMS
    # and KL-NMS on CUDA run these same CPU kernels on host copies.
    monkeypatch.setenv(_extension.CHECK_VALUES_ENV, "0")
    nan = float("nan")
    boxes = torch.tensor([[0.0, 0, 1, 1], [0, 0, nan, 1], [nan, nan, nan, nan], [0, 0, 1, 1]])
    scores = torch.tensor([0.9, nan, 0.5, 0.7])
    assert soft_nms(boxes, scores)[0].dtype == torch.long
    assert kl_nms(boxes, scores, torch.full((4, 4), nan))[0].dtype == torch.long
    assert iou_guided_nms(boxes, scores, scores, 0.5)[0].dtype == torch.long
    assert var_voting(
        boxes, boxes, torch.tensor([[1.0] * 4, [-1.0] * 4, [0.0] * 4, [nan] * 4])
    ).shape == (4, 4)
    rois = torch.tensor([[3.0, 0, 0, 2, 2], [0.0, nan, 0, 2, 2], [-1.0, 0, 0, 2, 2]])
    assert torch.all(prroi_pool(feats, rois, 2, 1.0) == 0)


def _refinement(device, steps=3):
    """(IoU-Net heads on ``device``, a function of inputs to refine): 5 + 3 boxes on four levels."""
    heads = make_heads(refine_steps=steps).eval().to(device)

    def inputs():
        maps = [torch.randn(2, 8, IMAGE[0] // s, IMAGE[1] // s) for s in STRIDES.values()]
        boxes = [torch.rand(n, 4) * 50 + torch.tensor([0, 0, 60, 60.0]) for n in (5, 3)]
        classes = [torch.zeros(n, dtype=torch.long) for n in (5, 3)]
        maps, boxes, classes = ([t.to(device) for t in ts] for ts in (maps, boxes, classes))
        return maps, boxes, classes, [IMAGE] * 2

    return heads, inputs


def _reads_of_refinement():
    heads, inputs = _refinement("meta")  # built outside the recorder: its set-up reads values
    fake = torch._subclasses.FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=True)
    with fake as mode:
        args = inputs()
        with _RecordReads(data_dependent=True) as rec:
            try:
                heads.refine_boxes(*args)
            except Exception as e:  # a value read on a meta tensor raises
                rec.reads.append(f"{type(e).__name__}: {str(e).splitlines()[0][:120]}")
    return rec.reads, mode.shape_env


def test_refinement_steps_read_no_values_of_device_tensors(monkeypatch):
    """IoU-Net box refinement on meta tensors: no value read and no op whose output size depends
    on values (the refinement used to split the boxes by FPN level with ``bincount().tolist()``
    and drop stopped boxes by boolean masks at every step; docs/gpu.md#host-syncs)."""
    monkeypatch.delenv(_extension.CHECK_VALUES_ENV, raising=False)
    reads, shape_env = _reads_of_refinement()
    assert reads == []
    assert not shape_env.var_to_range, shape_env.var_to_range  # no unbacked (data-dependent) size


def test_the_refinement_recorder_sees_data_dependent_ops():
    """The stricter recorder used above flags boolean-mask indexing, nonzero and bincount."""
    with torch._subclasses.FakeTensorMode(shape_env=ShapeEnv()), _RecordReads(True) as rec:
        x = torch.empty(6, device="meta")
        for op in (lambda: x[x > 0], lambda: torch.nonzero(x), lambda: x.long().bincount()):
            try:
                op()
            except Exception:  # some of them raise on meta tensors: recorded before that
                pass
    assert rec.reads == ["__getitem__", "nonzero", "bincount"], rec.reads


def test_refinement_maps_are_a_padded_channels_last_stack_on_the_cpu_only():
    """The refinement pools every FPN level in one call on one batch: level l of image i at
    l * N + i, zero-padded; channels-last on the CPU (the CPU kernel reads it in place), as given
    on another device; a single map is not copied."""
    maps = [torch.randn(2, 4, 8, 6, requires_grad=True), torch.randn(2, 4, 4, 3)]
    stack = _refinement_maps(maps)
    assert stack.shape == (4, 4, 8, 6) and not stack.requires_grad
    assert stack.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(stack[:2], maps[0].detach()) and torch.equal(stack[2:, :, :4, :3], maps[1])
    assert stack[2:, :, 4:].abs().sum() == 0 and stack[2:, :, :, 3:].abs().sum() == 0
    meta = [torch.empty(2, 4, 8, 6, device="meta"), torch.empty(2, 4, 4, 3, device="meta")]
    assert _refinement_maps(meta).is_contiguous()
    assert _refinement_maps(meta[:1]).stride() == meta[0].stride()
    already = maps[0].detach().contiguous(memory_format=torch.channels_last)
    assert _refinement_maps([already]).data_ptr() == already.data_ptr()  # no second copy


@pytest.mark.needs_cuda
def test_cuda_ops_do_not_sync():
    """On a GPU: the sync-free ops and wrappers run under set_sync_debug_mode("error"). IoU-guided
    NMS (one mask copy), soft-NMS and KL-NMS (host round-trip) and the aLRP band ops (the band
    table is built on the host) synchronise by design and are not in this list (docs/gpu.md).
    IoU-Net's box refinement runs whole, from the boxes kept by NMS to the refined boxes."""
    dev = "cuda"
    feats = torch.randn(2, 8, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    feats.requires_grad_()
    rois = torch.tensor([[0, 1.0, 2, 30, 40], [1, 5, 5, 60, 50]], device=dev).requires_grad_()
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11.0]], device=dev)
    var = torch.ones(2, 4, device=dev)
    heads, inputs = _refinement(dev)
    refine_args = inputs()
    heads.refine_boxes(*refine_args)  # a warm-up: lazy CUDA initialisation of the ops it uses
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = prroi_pool(feats, rois, 7, 0.25)
        out.sum().backward()
        var_voting(boxes, boxes, var)
        _refinement_maps([feats])
        heads.refine_boxes(*refine_args)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
