"""The compiled extension is built and loaded in the test environment (`make test` builds it)."""

import ctypes.util
import os
import platform
import sys

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


#: Set by `make test-portable` (dev/test_portable.py), which runs these tests on its build.
EXPECT_BUILD_ENV = "D2_BOXUNC_EXPECT_BUILD"
#: Dynamic symbol names as the library's string table holds them (NUL-delimited).
LIBMVEC, MADVISE, GOMP = b"\0_ZGVbN4v_expf\0", b"\0madvise\0", b"\0GOMP_"
PLATFORM_SYMBOLS = (LIBMVEC, b"\0_ZGVbN2v_exp\0", MADVISE, GOMP)


def _library_bytes() -> bytes:
    from d2_boxunc import _C

    with open(_C.__file__, "rb") as f:
        return f.read()


def test_build_features_name_the_selected_speed_ups():
    """`_build_features` reports csrc/common/platform.h's selection: "portable" alone, or the
    speed-ups of this platform; the default build on x86-64 Linux with GCC has all of them."""
    features = _extension.build_features()
    known = {
        "vector_ext",
        "sse",
        "libmvec",
        "huge_pages",
        "gnu_hints",
        "openmp",
        "no_trapping_math",
    }
    if "portable" in features:
        assert features == ("portable",)
    else:
        assert set(features) <= known and len(set(features)) == len(features), features
    if os.environ.get(EXPECT_BUILD_ENV) == "portable":
        assert features == ("portable",), features
    elif sys.platform == "linux" and platform.machine() == "x86_64" and "portable" not in features:
        assert {"vector_ext", "sse", "huge_pages", "gnu_hints", "openmp"} <= set(features), features
        assert ("libmvec" in features) == bool(ctypes.util.find_library("mvec")), features


def test_portable_library_references_no_platform_symbol():
    """The portable build is portable in its binary: no libmvec entry point, no madvise, no
    OpenMP runtime call. The default build on x86-64 Linux references the ones it reports."""
    data = _library_bytes()
    features = _extension.build_features()
    if features == ("portable",):
        assert not [s for s in PLATFORM_SYMBOLS if s in data]
    if "libmvec" in features:
        assert LIBMVEC in data
    if "huge_pages" in features:
        assert MADVISE in data
    if "openmp" in features:
        assert GOMP in data
