"""IoU-Net pieces (docs/design.md#iou-net) for any detectron2 R-CNN LazyConfig with an FPN.

Import them under underscore names and attach them to ``model.roi_heads`` after setting its
``_target_`` to ``IoUNetROIHeads`` (see ``configs/IoUNet/iounet_faster_rcnn_R_50_FPN_1x.py``).
Widths are written as 256 channels and 1024-wide FCs so that the synthetic switch shrinks them.
"""

from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from d2_boxunc.modeling.poolers import PrRoIPooler
from d2_boxunc.modeling.roi_heads import IoUHead, IoURoIGenerator

FPN_SCALES = (1.0 / 4, 1.0 / 8, 1.0 / 16, 1.0 / 32)

# R-CNN branch and IoU branch both pool with PrRoIPool 7x7 (OpenMMLab-IoUNet shares one extractor).
box_pooler = L(PrRoIPooler)(output_size=7, scales=FPN_SCALES, aligned=True)
iou_pooler = L(PrRoIPooler)(output_size=7, scales=FPN_SCALES, aligned=True)

iou_head = L(IoUHead)(
    input_shape=ShapeSpec(channels=256, height=7, width=7),
    num_classes="${..num_classes}",
    fc_dims=[1024, 1024],
    class_agnostic=False,
    loss_type="smooth_l1",
    loss_weight=5.0,
    smooth_l1_beta=1.0,
    iou_init_std=0.01,
)

iou_roi_generator = L(IoURoIGenerator)(
    num_samples=1000, sampler="per_image", per_iou=50, pre_sample=4000, min_iou=0.5, seed=0
)

# Row I1 test settings: IoU-guided NMS keyed on the IoU, refinement lambda 0.5, score cls x IoU.
test_settings = dict(
    test_iou_head=True,
    test_nms_type="iou_guided",
    test_nms_key="iou",
    test_nms_class_boxes="argmax",
    test_pre_refine_topk=100,
    refine=True,
    refine_lambda=0.5,
    refine_steps=5,
    refine_omega1=0.001,
    refine_omega2=-0.01,
    refine_clip=True,
    final_score="cls_x_iou",
)
