"""Finds and loads the compiled ops in ``d2_boxunc._C``.

Importing ``_C`` runs its static ``TORCH_LIBRARY_FRAGMENT`` / ``TORCH_LIBRARY_IMPL`` registrations,
after which the ops are reachable as ``torch.ops.d2_boxunc.*``.
"""

import importlib.util
import logging
import os

import torch

logger = logging.getLogger(__name__)

_LOAD_ERROR: str | None = None
if importlib.util.find_spec("d2_boxunc._C") is None:
    _HAS_OPS = False
    _LOAD_ERROR = "not built"
else:
    try:
        from d2_boxunc import _C  # noqa: F401

        _HAS_OPS = True
    except ImportError as e:  # built against another torch, or a missing symbol
        _HAS_OPS = False
        _LOAD_ERROR = str(e)


def has_ops() -> bool:
    """True when the compiled extension ``d2_boxunc._C`` is loaded."""
    return _HAS_OPS


def assert_has_ops() -> None:
    """Raise an actionable error when the compiled ops are missing."""
    if not _HAS_OPS:
        raise RuntimeError(
            "d2_boxunc's compiled ops (d2_boxunc._C) are not available"
            + (f" ({_LOAD_ERROR})" if _LOAD_ERROR else "")
            + ". Build them with `make setup` or `pip install --no-build-isolation -e .` "
            "in the repository root, using the same torch that runs this code."
        )


def cuda_version() -> int:
    """CUDA version the ops were built with (e.g. 13000), or -1 for a CPU-only build."""
    if not _HAS_OPS:
        return -1
    return int(torch.ops.d2_boxunc._cuda_version())


def build_features() -> tuple[str, ...]:
    """The platform-specific parts the loaded ops were built with (``csrc/common/platform.h``):
    ``("portable",)`` for a ``D2_BOXUNC_PORTABLE=1`` build, else e.g. ``("vector_ext", "sse",
    "libmvec", "huge_pages", "gnu_hints", "openmp", "no_trapping_math")`` on x86-64 Linux with GCC.
    Empty when the ops are not built."""
    if not _HAS_OPS:
        return ()
    features = str(torch.ops.d2_boxunc._build_features())
    return tuple(features.split(",")) if features else ()


def check_device_supported(t: torch.Tensor, name: str) -> None:
    """Give a clear error for a CUDA tensor on a build without CUDA kernels."""
    if t.is_cuda and cuda_version() == -1:
        raise RuntimeError(
            f"{name} is a CUDA tensor but d2_boxunc was built without CUDA kernels. "
            "Rebuild on a machine with the CUDA toolkit (or with FORCE_CUDA=1)."
        )


#: Environment switch of the input value checks of the op wrappers (docs/gpu.md#host-syncs).
CHECK_VALUES_ENV = "D2_BOXUNC_CHECK_VALUES"


def host_value_checks(t: torch.Tensor) -> bool:
    """Whether an op wrapper should check the *values* of ``t`` on the host (finite boxes, valid
    batch indices, positive variances...).

    Reading a value of a CUDA tensor on the host is a device->host sync, which stalls the launch
    queue on every call. So these checks run by default only for CPU tensors (where they cost a
    pass over the data and no sync), never while tracing with torch.compile, and for tensors on
    any other device only when ``D2_BOXUNC_CHECK_VALUES=1`` (a debug switch). ``=0`` turns them
    off on the CPU too. Shape, dtype and device checks always run (they read metadata only). On
    CUDA the kernels treat invalid values safely without them (docs/gpu.md#host-syncs).
    """
    if torch.compiler.is_compiling():
        return False
    switch = os.environ.get(CHECK_VALUES_ENV, "")
    if switch == "1":
        return True
    if switch == "0":
        return False
    return t.device.type == "cpu"
