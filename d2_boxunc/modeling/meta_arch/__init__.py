"""Meta-architectures (registered in detectron2's META_ARCH_REGISTRY on import)."""

from d2_boxunc.modeling.meta_arch.boxunc_retinanet import BoxUncRetinaNet  # noqa: F401
from d2_boxunc.modeling.meta_arch.rcnn import BoxUncRCNN  # noqa: F401
