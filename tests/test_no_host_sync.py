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
from d2_boxunc.modeling.roi_heads.iou_net_roi_heads import _refinement_map

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


class _RecordReads(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.reads = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _READS or (
            func is torch.Tensor.to and any(str(a) == "cpu" for a in (*args[1:], *kwargs.values()))
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


def test_refinement_prepares_channels_last_maps_on_the_cpu_only():
    """IoU-Net refinement converts a CPU map to channels-last once (the CPU kernel reads it in
    place); a map on another device is used as given (the CUDA kernel reads any layout)."""
    cpu = torch.randn(2, 4, 5, 6, requires_grad=True)
    prepared = _refinement_map(cpu)
    assert prepared.is_contiguous(memory_format=torch.channels_last) and not prepared.requires_grad
    meta = torch.empty(2, 4, 5, 6, device="meta")
    assert _refinement_map(meta).stride() == meta.stride()
    already = cpu.detach().contiguous(memory_format=torch.channels_last)
    assert _refinement_map(already).data_ptr() == already.data_ptr()  # no second copy


@pytest.mark.needs_cuda
def test_cuda_ops_do_not_sync():
    """On a GPU: the sync-free ops and wrappers run under set_sync_debug_mode("error"). IoU-guided
    NMS (one mask copy), soft-NMS and KL-NMS (host round-trip) and the aLRP band ops (the band
    table is built on the host) synchronise by design and are not in this list (docs/gpu.md)."""
    dev = "cuda"
    feats = torch.randn(2, 8, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    feats.requires_grad_()
    rois = torch.tensor([[0, 1.0, 2, 30, 40], [1, 5, 5, 60, 50]], device=dev).requires_grad_()
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11.0]], device=dev)
    var = torch.ones(2, 4, device=dev)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = prroi_pool(feats, rois, 7, 0.25)
        out.sum().backward()
        var_voting(boxes, boxes, var)
        _refinement_map(feats)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
