"""DIoU-NMS (Zheng et al., AAAI 2020): the compiled op against its Python-loop reference, the
conventions of docs/design.md#nms-family-rules, and torchvision's nms as the oracle of the same
loop without the DIoU penalty."""

import math

import pytest
import torch
import torchvision

from d2_boxunc.layers import _reference as ref
from d2_boxunc.layers import batched_diou_nms, diou_nms
from d2_boxunc.layers._reference import nms as ref_nms
from tests.conftest import cpu_and_cuda
from tests.layers.test_nms import (
    DTYPES,
    SEEDS,
    clustered_boxes,
    degenerate_layouts,
    wide_range_boxes,
)

THRESHOLDS = (0.5, 0.3, 0.0, -0.2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("iou_threshold", THRESHOLDS)
def test_matches_reference_on_random_boxes(iou_threshold, dtype):
    for seed in SEEDS:
        boxes, scores, _ = clustered_boxes(15 * seed, seed, dtype)
        keep = diou_nms(boxes, scores, iou_threshold)
        assert keep.dtype == torch.long
        assert torch.equal(keep, ref.diou_nms(boxes, scores, iou_threshold)), seed


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("iou_threshold", (0.5, 0.0, -0.1))
def test_grid_pruning_misses_no_suppression(iou_threshold, dtype):
    """The CPU kernel visits only the grid cells that can overlap the kept box (all cells for a
    negative threshold): widths from 0.5 to 400 px, touching and inverted boxes, tied scores."""
    for seed in range(4):
        boxes, scores, _ = wide_range_boxes(seed, dtype)
        keep = diou_nms(boxes, scores, iou_threshold)
        assert torch.equal(keep, ref.diou_nms(boxes, scores, iou_threshold)), seed


@pytest.mark.parametrize("dtype", DTYPES)
def test_degenerate_layouts_and_zero_area_boxes(dtype):
    for case, (boxes, scores, _) in enumerate(degenerate_layouts(dtype)):
        for t in (0.3, -0.05):
            assert torch.equal(diou_nms(boxes, scores, t), ref.diou_nms(boxes, scores, t)), case
    # zero-area boxes: IoU 0 with everything; the penalty of two equal points is 0 (not NaN)
    boxes = torch.tensor([[2, 2, 2, 2], [2, 2, 2, 2], [0, 0, 4, 4], [1, 1, 1, 5]], dtype=dtype)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=dtype)
    assert diou_nms(boxes, scores, 0.0).tolist() == [0, 1, 2, 3]
    assert ref.diou_nms(boxes, scores, 0.0).tolist() == [0, 1, 2, 3]
    # below 0, the point suppresses the boxes centred on it (overlap 0), and the segment whose
    # centre is off it (penalty 8 / 68) once the threshold is below -8 / 68
    assert diou_nms(boxes, scores, -0.05).tolist() == [0, 3]
    assert diou_nms(boxes, scores, -0.2).tolist() == [0]


def test_penalty_keeps_the_box_beside_and_suppresses_the_concentric_one():
    """Two boxes at the same IoU (1/3) with the kept box: the concentric one is suppressed, the
    one beside it (centre distance 5, enclosing diagonal^2 325: overlap 1/3 - 1/13) survives at a
    threshold between the two overlaps. IoU-based NMS suppresses both."""
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [-5, -2.5, 15, 12.5], [30, 30, 40, 40]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert torchvision.ops.nms(boxes, scores, 0.3).tolist() == [0, 3]
    assert diou_nms(boxes, scores, 0.3).tolist() == [0, 1, 3]


@pytest.mark.parametrize("dtype", DTYPES)
def test_threshold_is_strict(dtype):
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10]], dtype=dtype)
    scores = torch.tensor([0.9, 0.8], dtype=dtype)
    overlap = ref_nms._iou_one_to_many(boxes[0], boxes[1:]) - ref_nms._diou_penalty_one_to_many(
        boxes[0], boxes[1:]
    )
    v = float(overlap[0])  # exactly representable in dtype: the kernels compare in dtype
    below = math.nextafter(v, -math.inf) if dtype == torch.float64 else v - 1e-6
    assert diou_nms(boxes, scores, v).tolist() == [0, 1]
    assert diou_nms(boxes, scores, below).tolist() == [0]


def test_ties_go_to_the_smaller_index():
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 3 + [[50.0, 50, 60, 60]])
    scores = torch.tensor([0.5, 0.7, 0.7, 0.7])
    assert diou_nms(boxes, scores, 0.5).tolist() == [1, 3]
    assert ref.diou_nms(boxes, scores, 0.5).tolist() == [1, 3]
    idxs = torch.tensor([0, 1, 0, 1])
    assert batched_diou_nms(boxes, scores, idxs, 0.5).tolist() == [1, 2, 3]


@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_and_single(dtype):
    empty = torch.zeros(0, 4, dtype=dtype)
    for keep in (
        diou_nms(empty, torch.zeros(0, dtype=dtype), 0.5),
        batched_diou_nms(empty, torch.zeros(0, dtype=dtype), torch.zeros(0, dtype=torch.long), 0.5),
    ):
        assert keep.shape == (0,) and keep.dtype == torch.long
    one = torch.tensor([[1.0, 2, 3, 4]], dtype=dtype)
    assert diou_nms(one, torch.tensor([0.1], dtype=dtype), -1.0).tolist() == [0]


# ------------------------------------------------------------------------ oracle: torchvision nms


@pytest.mark.parametrize("dtype", DTYPES)
def test_reference_without_the_penalty_is_torchvision_nms(dtype, monkeypatch):
    """The reference's greedy loop with the penalty set to 0 is plain NMS: torchvision's (distinct
    scores, so that tie order cannot differ; thresholds exact in float32, as torchvision compares
    in float64 and the kernels in the boxes' dtype)."""
    monkeypatch.setattr(ref_nms, "_diou_penalty_one_to_many", lambda box, boxes: 0)
    for seed in SEEDS:
        boxes, scores, _ = clustered_boxes(20 * seed + 1, seed, dtype)
        for t in (0.25, 0.5, 0.75):
            assert torch.equal(
                ref.diou_nms(boxes, scores, t), torchvision.ops.nms(boxes, scores, t)
            )


@pytest.mark.parametrize("dtype", DTYPES)
def test_concentric_boxes_make_it_torchvision_nms(dtype):
    """With every box centred on one of a few points the penalty is 0 within a cluster (exact:
    integer centres and half-integer sizes) and the clusters are far apart, so the compiled op is
    torchvision's nms."""
    g = torch.Generator().manual_seed(0)
    n = 300
    centres = torch.randint(0, 8, (n, 2), generator=g).double() * 200
    half = torch.randint(1, 120, (n, 2), generator=g).double() / 2
    boxes = torch.cat([centres - half, centres + half], 1).to(dtype)
    scores = torch.randperm(n, generator=g).to(dtype) / n
    for t in (0.25, 0.5, 0.75):
        assert torch.equal(diou_nms(boxes, scores, t), torchvision.ops.nms(boxes, scores, t))


# ------------------------------------------------------------------------------- batched variant


def test_batched_is_per_class_and_batch_invariant():
    """Each class keeps what diou_nms keeps on that class alone, whatever the other classes
    hold; boxes of different classes never interact, even at a negative threshold (no
    coordinate offsets); the merge is by decreasing score, ties to the smaller index."""
    for seed in range(3):
        boxes, scores, g = clustered_boxes(160, seed, quantum=0.25)
        idxs = torch.randint(0, 4, (160,), generator=g)
        for t in (0.4, -0.1):
            keep = batched_diou_nms(boxes, scores, idxs, t)
            assert torch.equal(keep, ref.batched_diou_nms(boxes, scores, idxs, t))
            assert (scores[keep][:-1] >= scores[keep][1:]).all()
            for c in range(4):
                sel = torch.nonzero(idxs == c).flatten()
                assert torch.equal(keep[idxs[keep] == c], sel[diou_nms(boxes[sel], scores[sel], t)])
            # another image's worth of boxes in a new class changes nothing of the others
            more, more_scores, _ = clustered_boxes(80, seed + 10, quantum=0.25)
            keep2 = batched_diou_nms(
                torch.cat([boxes, more]),
                torch.cat([scores, more_scores]),
                torch.cat([idxs, torch.full((80,), 7)]),
                t,
            )
            assert torch.equal(keep2[keep2 < 160], keep)
            # and the class ids' values do not matter, only which boxes share one
            assert torch.equal(batched_diou_nms(boxes, scores, idxs * 1000 - 5, t), keep)


def test_classes_never_interact():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert diou_nms(boxes, scores, -0.5).tolist() == [0]
    assert batched_diou_nms(boxes, scores, torch.tensor([0, 1, 2]), -0.5).tolist() == [0, 1, 2]


# ------------------------------------------------------------------ validation, dispatcher, device


def test_validation_errors():
    boxes, scores, _ = clustered_boxes(6, 0)
    idxs = torch.zeros(6, dtype=torch.long)
    with pytest.raises(ValueError, match=r"^iou_threshold must be in \[-1, 1\]"):
        diou_nms(boxes, scores, 50.0)
    with pytest.raises(ValueError, match=r"^iou_threshold must be in \[-1, 1\]"):
        batched_diou_nms(boxes, scores, idxs, float("nan"))
    with pytest.raises(TypeError, match="scores must have the dtype of boxes"):
        diou_nms(boxes, scores.double(), 0.5)
    with pytest.raises(ValueError, match=r"scores must have shape \(6,\)"):
        diou_nms(boxes, scores[:3], 0.5)
    with pytest.raises(ValueError, match=r"boxes must have shape \(N, 4\)"):
        diou_nms(boxes[:, :3], scores, 0.5)
    with pytest.raises(TypeError, match="idxs must be an integer Tensor"):
        batched_diou_nms(boxes, scores, idxs.float(), 0.5)
    bad = boxes.clone()
    bad[2, 1] = float("inf")
    with pytest.raises(ValueError, match="boxes must be finite"):
        diou_nms(bad, scores, 0.5)


def test_outputs_do_not_track_gradients():
    boxes, scores, _ = clustered_boxes(20, 1)
    keep = diou_nms(boxes.requires_grad_(), scores.requires_grad_(), 0.5)
    assert not keep.requires_grad


@pytest.mark.parametrize("case", range(3))
def test_opcheck(case):
    boxes, scores, g = clustered_boxes(40, 1)
    idxs = torch.randint(0, 3, (40,), generator=g)
    args = [
        (boxes, scores, None, 0.5),
        (boxes, scores, idxs, -0.1),
        (torch.zeros(0, 4), torch.zeros(0), None, 0.5),
    ][case]
    torch.library.opcheck(
        torch.ops.d2_boxunc.diou_nms,
        args,
        test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"),
    )


def test_torch_compile_fullgraph():
    boxes, scores, g = clustered_boxes(60, 2)
    idxs = torch.randint(0, 3, (60,), generator=g)

    def post_process(boxes, scores, idxs):
        keep = batched_diou_nms(boxes, scores, idxs, 0.5)
        return boxes[keep] * scores[keep, None], keep

    compiled = torch.compile(post_process, backend="aot_eager", fullgraph=True)
    for got, expected in zip(compiled(boxes, scores, idxs), post_process(boxes, scores, idxs)):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("device", cpu_and_cuda())
def test_device_matches_reference(device):
    boxes, scores, g = clustered_boxes(300, 4)
    idxs = torch.randint(0, 3, (300,), generator=g)
    for t in (0.5, 0.0, -0.1):
        keep = diou_nms(boxes.to(device), scores.to(device), t)
        assert keep.device.type == device
        assert torch.equal(keep.cpu(), ref.diou_nms(boxes, scores, t))
        keep = batched_diou_nms(boxes.to(device), scores.to(device), idxs.to(device), t)
        assert torch.equal(keep.cpu(), ref.batched_diou_nms(boxes, scores, idxs, t))
