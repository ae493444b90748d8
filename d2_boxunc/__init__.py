"""d2_boxunc: quality-aware box localization for detectron2.

Importing the package loads the compiled ops (when built), registers the synthetic datasets and
fills detectron2's registries with this project's components.
"""

__version__ = "0.1.0"

from d2_boxunc import _extension  # noqa: F401  (loads d2_boxunc._C when built)
from d2_boxunc import data  # noqa: F401  (registers boxunc_synth_{train,val})
from d2_boxunc import layers  # noqa: F401
from d2_boxunc import modeling  # noqa: F401  (registry side effects)
