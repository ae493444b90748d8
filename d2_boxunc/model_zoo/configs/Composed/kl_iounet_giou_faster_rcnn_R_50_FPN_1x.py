"""C1: KL-Loss, IoU-Net and GIoU composed in one Faster R-CNN R50-FPN 1x (docs/composition.md).

What each paper supplies:
- GIoU (Rezatofighi et al., CVPR 2019): the R-CNN box loss, ``1 - GIoU`` of the decoded box,
  weight 10 (:class:`KLIoULossFastRCNNOutputLayers`, ``box_reg_loss_type="giou"``; ``"diou"``
  etc. by override);
- KL-Loss (He et al., CVPR 2019): the corner-delta coder (x10), the log-variance layer (init std
  1e-4), the KL loss, here training sigma only (weight 1, box gradient stopped), and variance
  voting at test time (sigma_t 0.02, voters with IoU > 0);
- IoU-Net (Jiang et al., ECCV 2018): PrRoIPool in both branches, the IoU head on jittered
  ground-truth boxes (smooth-L1, weight 5), IoU-guided NMS, refinement (lambda 0.5, 5 steps) and
  the final score cls x IoU (:class:`KLIoUNetROIHeads`).

Test time: IoU-guided NMS keyed on cls x IoU chooses the kept boxes -> each is replaced by the
variance vote of its class's candidates -> refinement from the voted box -> cls x IoU. Eval-only
switches on the same checkpoint: ``model.roi_heads.box_predictor.test_var_voting=False`` (no
voting), ``model.roi_heads.refine=False`` (no refinement), ``model.roi_heads.test_nms_type=standard``
(standard NMS), ``model.roi_heads.test_iou_head=False`` (KL-Loss's own inference: NMS + voting).

Deviations from the papers' recipes, beyond those of I1 (``IoUNet/iounet_faster_rcnn_R_50_FPN_1x.py``:
detectron2's multi-scale 1x recipe, MSRA R-50, PrRoIPool ``aligned=True``):
- the KL loss trains sigma only (KL-Loss trains the box with it); the box loss is GIoU, computed on
  KL-Loss's corner deltas (the GIoU repo decodes detectron's centre/size deltas, weights
  10, 10, 5, 5);
- 1x schedule (KL-Loss trains 2x);
- IoU-guided NMS keyed on cls x IoU (OpenMMLab-IoUNet's improvement; the IoU-Net paper keys on the
  IoU alone), and voting inserted between that NMS and refinement; its voters are every same-class
  candidate overlapping the kept box (KL-Loss: those not yet selected or suppressed);
- sigma reported is the kept box's as regressed, before voting and refinement.
"""

from d2_boxunc.modeling.meta_arch import BoxUncRCNN
from d2_boxunc.modeling.roi_heads import KLIoULossFastRCNNOutputLayers, KLIoUNetROIHeads

from ..common.models.kl_box_predictor import box_predictor as _kl_box_predictor
from ..IoUNet.iounet_faster_rcnn_R_50_FPN_1x import (
    dataloader,
    lr_multiplier,
    model,
    optimizer,
    train,
)

model._target_ = BoxUncRCNN  # rescales pred_boxes_std with the boxes
model.roi_heads._target_ = KLIoUNetROIHeads
# the IoU-type loss, its weight and the KL term's are KLIoULossFastRCNNOutputLayers' defaults
model.roi_heads.box_predictor = _kl_box_predictor
model.roi_heads.box_predictor._target_ = KLIoULossFastRCNNOutputLayers
model.roi_heads.box_predictor.test_var_voting = True
model.roi_heads.test_nms_key = "cls_x_iou"
train.output_dir = "./output/kl_iounet_giou_faster_rcnn_R_50_FPN_1x"
