"""Meta-architectures (LazyConfig ``model._target_``) and RetinaNet's head with branches."""

from d2_boxunc.modeling.meta_arch.boxunc_retinanet import BoxUncRetinaNet  # noqa: F401
from d2_boxunc.modeling.meta_arch.rcnn import BoxUncRCNN  # noqa: F401
from d2_boxunc.modeling.meta_arch.retinanet_head import BoxUncRetinaNetHead  # noqa: F401
