"""d2_boxunc: quality-aware box localization for detectron2.

Importing the package loads the compiled ops (when built), registers the synthetic datasets and
fills detectron2's registries with this project's components.
"""

import warnings

__version__ = "0.1.0"

# detectron2 (and only it) still calls torch.jit.script at import; torch 2.14 warns on every call.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*is deprecated", category=FutureWarning)

from d2_boxunc import _extension  # noqa: E402,F401  (loads d2_boxunc._C when built)
from d2_boxunc import data  # noqa: E402,F401  (registers boxunc_synth_{train,val})
from d2_boxunc import layers  # noqa: E402,F401
from d2_boxunc import losses  # noqa: E402,F401
from d2_boxunc import modeling  # noqa: E402,F401  (registry side effects)
