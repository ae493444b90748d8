"""d2_boxunc: quality-aware box localization for detectron2.

Importing the package loads the compiled ops (when built) and registers the synthetic datasets.
Its components are configured by LazyConfig (``_target_``); none is registered in detectron2's
yacs registries.
"""

import warnings

__version__ = "0.1.0"

# detectron2 (and only it) still calls torch.jit.script at import; torch 2.14 warns on every call.
warnings.filterwarnings(
    "ignore", message=r".*torch\.jit\.script.*is deprecated", category=FutureWarning
)

from d2_boxunc import (  # noqa: E402  (after the warning filter, which must come first)
    _extension,  # noqa: E402,F401  (loads d2_boxunc._C when built)
    data,  # noqa: E402,F401  (registers boxunc_synth_{train,val})
    layers,  # noqa: E402,F401
    losses,  # noqa: E402,F401
    modeling,  # noqa: E402,F401
)
