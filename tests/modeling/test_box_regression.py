"""Box2BoxTransformXYXY: corner-delta encoding, round trips, clamp, errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from d2_boxunc.modeling.box_regression import Box2BoxTransformXYXY


def random_boxes(n, generator=None, dtype=torch.float64):
    xy = torch.rand(n, 2, generator=generator, dtype=dtype) * 500
    wh = torch.rand(n, 2, generator=generator, dtype=dtype) * 200 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_deltas_follow_the_corner_formula():
    t = Box2BoxTransformXYXY()
    src = torch.tensor([[10.0, 20.0, 50.0, 100.0]])
    tgt = torch.tensor([[12.0, 16.0, 60.0, 100.0]])
    deltas = t.get_deltas(src, tgt)
    # w = 40, h = 80, weight 10 on every coordinate
    torch.testing.assert_close(
        deltas, torch.tensor([[10 * 2 / 40, 10 * -4 / 80, 10 * 10 / 40, 0.0]])
    )


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), weights=st.sampled_from([(10, 10, 10, 10), (1, 2, 3, 4)]))
def test_round_trip(seed, weights):
    g = torch.Generator().manual_seed(seed)
    t = Box2BoxTransformXYXY(weights=weights)
    src = random_boxes(32, g)
    size = (src[:, 2:] - src[:, :2]).repeat(1, 2)
    tgt = src + torch.randn(32, 4, generator=g, dtype=src.dtype) * size  # inverted targets too
    torch.testing.assert_close(t.apply_deltas(t.get_deltas(src, tgt), src), tgt)


def test_apply_deltas_class_specific_layout_and_zero_deltas():
    t = Box2BoxTransformXYXY()
    boxes = random_boxes(6)
    out = t.apply_deltas(torch.zeros(6, 12, dtype=torch.float64), boxes)
    assert out.shape == (6, 12)
    torch.testing.assert_close(out.view(6, 3, 4), boxes[:, None].expand(6, 3, 4))


def test_empty_inputs():
    """No box (e.g. a RetinaNet level without a candidate): empty outputs of the right width."""
    t = Box2BoxTransformXYXY()
    assert t.apply_deltas(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0, 4)
    assert t.apply_deltas(torch.zeros(0, 12), torch.zeros(0, 4)).shape == (0, 12)
    assert t.get_deltas(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0, 4)


def test_decode_clamps_normalised_deltas():
    t = Box2BoxTransformXYXY(clamp=62.5)
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    out = t.apply_deltas(torch.tensor([[1e6, -1e6, 0.0, 1e6]]), boxes)
    torch.testing.assert_close(out, torch.tensor([[625.0, -1250.0, 10.0, 20.0 + 1250.0]]))


def test_inverted_decodes_are_allowed():
    t = Box2BoxTransformXYXY()
    out = t.apply_deltas(
        torch.tensor([[20.0, 0.0, -20.0, 0.0]]), torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    )
    assert out[0, 2] < out[0, 0]


def test_errors():
    with pytest.raises(ValueError, match="weights"):
        Box2BoxTransformXYXY(weights=(10, 10, 5))
    with pytest.raises(ValueError, match="clamp"):
        Box2BoxTransformXYXY(clamp=0)
    t = Box2BoxTransformXYXY()
    with pytest.raises(ValueError, match="positive width"):
        t.get_deltas(torch.tensor([[0.0, 0.0, 0.0, 5.0]]), torch.tensor([[0.0, 0.0, 1.0, 5.0]]))
    with pytest.raises(ValueError, match="must match"):
        t.get_deltas(random_boxes(2), random_boxes(3))
    with pytest.raises(ValueError, match=r"\(N, 4k\)"):
        t.apply_deltas(torch.zeros(2, 6), random_boxes(2))
