"""KL-Loss box predictor (docs/design.md#kl-loss): corner deltas x10, log-variance layer, KL loss.

Assign it to ``model.roi_heads.box_predictor`` of any detectron2 R-CNN LazyConfig, and set
``model._target_`` to ``d2_boxunc.modeling.meta_arch.BoxUncRCNN`` so that ``pred_boxes_std`` is
rescaled to the original image with the boxes. Test-time defaults are the "KL" row (hard NMS, no
voting); the eval-only configs switch voting / soft-NMS on.
"""

from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from d2_boxunc.modeling.box_regression import Box2BoxTransformXYXY
from d2_boxunc.modeling.roi_heads import KLFastRCNNOutputLayers

box_predictor = L(KLFastRCNNOutputLayers)(
    input_shape=ShapeSpec(channels=1024),
    box2box_transform=L(Box2BoxTransformXYXY)(weights=(10, 10, 10, 10), clamp=1000.0 / 16),
    num_classes="${..num_classes}",
    test_score_thresh=0.05,
    logvar_init_std=1e-4,
    kl_smooth_l1_beta=1.0,
    alpha_clamp=None,
    test_nms_method="hard",
    test_var_voting=False,
    sigma_t=0.02,
    vote_iou_thresh=0.0,
    soft_nms_sigma=0.5,
    prune_thresh=0.001,
    variance_space="delta",
    logvar_stop_gradient=False,
)
