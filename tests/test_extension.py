"""The compiled extension is built and loaded in the test environment (`make test` builds it)."""

import torch

from d2_boxunc import _extension


def test_extension_loaded_with_every_op():
    assert _extension.has_ops(), _extension._LOAD_ERROR
    ops = torch.ops.d2_boxunc
    for name in (
        "prroi_pool",
        "_prroi_pool_backward",
        "soft_nms",
        "iou_guided_nms",
        "diou_nms",
        "var_voting",
        "kl_nms",
    ):
        assert hasattr(ops, name), f"d2_boxunc::{name} is not registered"
    cv = _extension.cuda_version()  # -1 for a CPU-only build, else e.g. 13000
    assert cv == -1 or cv >= 11000, cv
    if torch.cuda.is_available():
        assert cv != -1, "a GPU is visible but the ops were built without CUDA"
