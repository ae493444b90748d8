"""Meta-architectures (LazyConfig ``model._target_``)."""

from d2_boxunc.modeling.meta_arch.boxunc_retinanet import BoxUncRetinaNet  # noqa: F401
from d2_boxunc.modeling.meta_arch.rcnn import BoxUncRCNN  # noqa: F401
