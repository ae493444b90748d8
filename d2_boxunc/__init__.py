"""d2_boxunc: quality-aware box localization for detectron2.

Importing the package loads the compiled ops (when built, :mod:`d2_boxunc.ops`) and nothing that
needs detectron2, so that an exported model loads with torch alone. The subpackages (``data``,
``layers``, ``losses``, ``modeling``, ...) are imported on first use; ``import d2_boxunc.data``
registers the synthetic datasets (``load_config`` does it for you). Components are configured
by LazyConfig (``_target_``); none is registered in detectron2's yacs registries.
"""

import importlib
import warnings

__version__ = "0.1.0"

# detectron2 (and only it) still calls torch.jit.script at import; torch 2.14 warns on every call.
warnings.filterwarnings(
    "ignore", message=r".*torch\.jit\.script.*is deprecated", category=FutureWarning
)

from d2_boxunc import ops  # noqa: E402,F401  (after the warning filter; torch only)

_LAZY = ("config", "data", "engine", "evaluation", "layers", "losses", "model_zoo", "modeling")


def __getattr__(name: str):
    """``d2_boxunc.layers`` etc. without importing them (and detectron2) at package import."""
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
