"""A7: Faster R-CNN R50-FPN trained with aLRP Loss in the RPN and in the R-CNN head.

The aLRP paper's Faster R-CNN (NeurIPS 2020; the official code's
``configs/alrp_loss/alrp_loss_faster_rcnn_r50_fpn_100e_coco500.py``,
https://github.com/kemaloksuz/aLRPLoss). Official result (its README, "Faster R-CNN Results",
R-50, 500): 40.7 AP / 66.7 oLRP minival; its baselines in the same recipe: cross-entropy +
smooth-L1 37.8, cross-entropy + GIoU 38.2.

- RPN (``ALRPRPN``): aLRP Loss on the sigmoid objectness of every anchor (positives IoU >= 0.7
  or a box's best anchors, negatives < 0.3, no sampling), localisation error
  ``(1 - GIoU) / (2 (1 - 0.7))``, box coder weights (10, 10, 5, 5) (official stds
  (0.1, 0.1, 0.2, 0.2)), head weight 0.2 on both components, its own self-balance;
- R-CNN (``ALRPROIHeads`` + ``ALRPFastRCNNOutputLayers``): every proposal kept (positives IoU >=
  0.5; no RoI sampling, no ground-truth box added to the proposals: mmdetection's
  ``PseudoSampler``), aLRP Loss over all (RoI, class) sigmoid logits, class-specific boxes,
  error ``1 - GIoU`` of the decoded box, its own self-balance; both ``w_SB`` start at 50 and are
  updated once per epoch;
- 512 x 512 SSD-style training (A1's data), test short side 500 (max 833), batch 32, SGD lr 0.012,
  100 epochs with x0.1 at epochs 75 and 95, warm-up 500 iterations from 0.001.

Deviations from the official recipe (https://github.com/kemaloksuz/aLRPLoss,
``configs/alrp_loss/alrp_loss_faster_rcnn_r50_fpn_100e_coco500.py``):
- initial weights: MSRA's caffe R-50 (detectron2's ``R-50.pkl``: BGR, stride in the 1x1
  convolution) where the official code loads torchvision's ``resnet50``; the twin
  ``alrp_faster_rcnn_R_50_FPN_100ep_512_official.py`` loads torchvision's;
- normalisation: detectron2's FrozenBN (statistics and affine parameters frozen) where
  mmdetection's ``norm_eval=True`` trains the BN affine parameters;
- augmentation: the photometric distortion's output is clipped to [0, 255] and rounded to uint8 and
  the uint8 image is resized by PIL's bilinear filter, where the reference keeps float32 and
  resizes with OpenCV (docs/atss_ssd.md);
- RPN anchor matching: detectron2's low-quality rule gives each box its best anchors whatever
  their IoU, mmdetection's only at IoU >= 0.3 (``min_pos_iou``);
- initialisation: the box head's FC layers use detectron2's ``c2_xavier_fill`` (mmdetection:
  ``xavier_uniform``), the RPN objectness bias starts at 0 (official: ``-log(99)``, which aLRP
  Loss, a function of logit differences, does not see); the R-CNN classifier keeps detectron2's
  ``K + 1`` outputs with the background one unused (official: ``K``);
- self-balance: the period counts every iteration (official: iterations with a positive), and
  the per-iteration values are averaged over the GPUs (official: each GPU its own).
Each ranking covers one GPU's images, as the official code's (8 per GPU at batch 32 on its 4
GPUs: run this config on 4 GPUs for the same ranking set). Scales, schedule, warm-up, proposal settings (2000 per level before NMS 0.7, 1000 after, in
training and testing), RoIAlign (aligned, sampling 0), test thresholds (score 0.05, NMS 0.5, 100
per image) and the SSD augmentation follow the official config.
"""

from detectron2.config import LazyCall as L
from detectron2.modeling.box_regression import Box2BoxTransform

from d2_boxunc.modeling.proposal_generator import ALRPRPN
from d2_boxunc.modeling.roi_heads import ALRPFastRCNNOutputLayers, ALRPROIHeads

from ..common.alrp import dataloader, optimizer, train
from ..common.alrp import epoch_schedule as _epoch_schedule
from ..common.models.faster_rcnn_fpn import model

model.backbone.bottom_up.freeze_at = 2  # official frozen_stages=1: stem and res2

# ---- RPN: aLRP Loss, no anchor sampling ------------------------------------------------------
_rpn = model.proposal_generator
_rpn._target_ = ALRPRPN
# every anchor kept: ALRPRPN's default batch_size_per_image = SAMPLE_ALL (detectron2's sampling)
del _rpn.batch_size_per_image, _rpn.positive_fraction
_rpn.box2box_transform = L(Box2BoxTransform)(weights=[10.0, 10.0, 5.0, 5.0])
_rpn.loss_weight = {"loss_rpn_cls": 0.2, "loss_rpn_loc": 0.2}  # the official head_weight
_rpn.pre_nms_topk = (2000, 1000)
_rpn.post_nms_topk = (1000, 1000)
_rpn.nms_thresh = 0.7
_rpn.ranking_delta = 1.0
_rpn.sb_weight_init = 50.0
_rpn.sb_period = 0  # one epoch, derived from the two keys below
_rpn.sb_dataset = "${dataloader.train.dataset.names}"
_rpn.sb_total_batch_size = "${dataloader.train.total_batch_size}"

# ---- R-CNN: every proposal, aLRP Loss on sigmoid class logits ---------------------------------
_roi_heads = model.roi_heads
_roi_heads._target_ = ALRPROIHeads
# every RoI kept: ALRPROIHeads' default batch_size_per_image = SAMPLE_ALL
del _roi_heads.batch_size_per_image, _roi_heads.positive_fraction
_roi_heads.proposal_append_gt = False  # PseudoSampler adds no ground-truth box
_predictor = _roi_heads.box_predictor
_predictor._target_ = ALRPFastRCNNOutputLayers
_predictor.box2box_transform.weights = [10.0, 10.0, 5.0, 5.0]
_predictor.ranking_delta = 1.0
_predictor.test_score_thresh = 0.05
_predictor.test_nms_thresh = 0.5
_predictor.test_topk_per_image = 100
_predictor.sb_weight_init = 50.0
_predictor.sb_period = 0
_predictor.sb_dataset = "${dataloader.train.dataset.names}"
_predictor.sb_total_batch_size = "${dataloader.train.total_batch_size}"

# ---- optimiser / schedule ----------------------------------------------------------------------
optimizer.lr = 0.012
train.max_iter, lr_multiplier = _epoch_schedule(100, (75, 95), total_batch=32)
train.output_dir = "./output/alrp_faster_rcnn_R_50_FPN_100ep_512"
