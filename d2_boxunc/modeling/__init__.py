"""Models: d2_boxunc's detectron2 components, built from LazyConfigs (``_target_``)."""

from d2_boxunc.modeling import (  # noqa: F401
    meta_arch,
    proposal_generator,  # noqa: F401
    roi_heads,
)
from d2_boxunc.modeling.backbone import make_small_resnet_stages  # noqa: F401
from d2_boxunc.modeling.matchers import ATSSMatcher  # noqa: F401
from d2_boxunc.modeling.sampling import SAMPLE_ALL  # noqa: F401
from d2_boxunc.modeling.self_balance import SelfBalance  # noqa: F401
