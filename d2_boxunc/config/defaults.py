"""yacs keys of d2_boxunc's components, for users of detectron2's ``get_cfg()`` configs.

    from detectron2.config import get_cfg
    from d2_boxunc.config import add_boxunc_config
    cfg = get_cfg(); add_boxunc_config(cfg)

LazyConfigs (``configs/``) need none of this: they set the same arguments directly.
"""

from detectron2.config import CfgNode as CN


def add_boxunc_config(cfg: CN) -> CN:
    """Add every d2_boxunc key, with its default, to a detectron2 yacs config (in place)."""
    _add_kl_config(cfg)
    _add_iou_loss_config(cfg)
    _add_iounet_config(cfg)
    _add_alrp_config(cfg)
    return cfg


# ---- KL-Loss (d2_boxunc.modeling.roi_heads.kl_fast_rcnn) -------------------------------------
def _add_kl_config(cfg: CN) -> None:
    """``MODEL.ROI_HEADS.NAME: KLROIHeads`` reads these (docs/design.md#kl-loss; paper defaults)."""
    kl = cfg.MODEL.ROI_BOX_HEAD.KL = CN()
    kl.BBOX_REG_WEIGHTS = (10.0, 10.0, 10.0, 10.0)  # corner-delta coder, x10 on all coordinates
    kl.DELTA_CLAMP = 1000.0 / 16  # |t / w| clamp when decoding
    kl.LOGVAR_INIT_STD = 1e-4
    kl.SMOOTH_L1_BETA = 1.0  # 0.0: L1 (the KL-Loss-pytorch setting)
    kl.ALPHA_CLAMP = []  # [lo, hi]: straight-through clamp of alpha in the loss; [] = off
    kl.NMS_METHOD = "hard"  # "hard" | "soft" (Gaussian)
    kl.VAR_VOTING = False
    kl.SIGMA_T = 0.02
    kl.VOTE_IOU_THRESH = 0.0
    kl.SOFT_NMS_SIGMA = 0.5
    kl.PRUNE_THRESH = 0.001
    kl.VARIANCE_SPACE = "delta"  # "delta" | "pixel"


# ---- IoU / GIoU / ln-IoU losses (d2_boxunc.modeling.roi_heads.iou_loss_fast_rcnn, .rpn) -------
def _add_iou_loss_config(cfg: CN) -> None:
    """Keys of ``MODEL.ROI_HEADS.NAME: IoULossROIHeads`` and ``MODEL.PROPOSAL_GENERATOR.NAME:
    IoULossRPN`` (docs/design.md#iou-based-box-losses). The loss types stay detectron2's own keys,
    ``MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE`` and ``MODEL.RPN.BBOX_REG_LOSS_TYPE``, which these
    classes extend with ``"iou"`` and ``"ln_iou"`` (``"giou"`` becomes ours)."""
    if "BOXUNC" not in cfg.MODEL:
        cfg.MODEL.BOXUNC = CN()
    node = cfg.MODEL.BOXUNC.IOU_LOSS = CN()
    node.ROI_WEIGHT = 10.0  # weight of loss_box_reg for iou / ln_iou / giou (GIoU repo: 10)
    node.RPN_WEIGHT = 1.0  # weight of loss_rpn_loc for iou / ln_iou / giou (GIoU repo: 1)
    node.RPN_NORM = (
        "batch"  # "batch" (detectron2) | "actual" (sampled anchors per image, GIoU repo)
    )
    node.EPS = 1e-7  # added to the union and the enclosing area


# ---- IoU-Net (d2_boxunc.modeling.roi_heads.iou_net_roi_heads) --------------------------------
def _add_iounet_config(cfg: CN) -> None:
    """``MODEL.ROI_HEADS.NAME: IoUNetROIHeads`` reads these (row I1 defaults; see
    docs/design.md#iou-net).
    ``MODEL.ROI_BOX_HEAD.POOLER_TYPE: PrRoIPool`` pools the R-CNN branch with PrRoIPool too."""
    h = cfg.MODEL.ROI_IOU_HEAD = CN()
    h.NAME = "IoUHead"
    h.IN_FEATURES = []  # [] = MODEL.ROI_HEADS.IN_FEATURES
    h.POOLER_RESOLUTION = 7
    h.POOLER_ALIGNED = True  # PrRoIPool -0.5 shift like ROIAlignV2; False = official op
    h.NUM_FC = 2
    h.FC_DIM = 1024
    h.CLS_AGNOSTIC = False  # paper: class-aware
    h.INIT_STD = 0.01  # fc_iou ~ N(0, 0.01^2)
    h.LOSS_TYPE = "smooth_l1"  # "smooth_l1" (paper, targets on [-1, 1]) | "bce" (OpenMMLab-IoUNet)
    h.LOSS_WEIGHT = 5.0
    h.SMOOTH_L1_BETA = 1.0
    # jittered training RoIs (IoURoIGenerator)
    h.SAMPLER = "per_image"  # "per_image" | "per_iou"
    h.NUM_SAMPLES = 1000  # per image (cap for "per_iou")
    h.PER_IOU = 50  # per IoU bin per GT ("per_iou")
    h.PRE_SAMPLE = 4000  # lattice transforms kept per IoU bin
    h.MIN_IOU = 0.5
    h.SEED = 0  # rank r draws from SEED + r
    # inference (each stage switchable)
    h.TEST_ON = True  # False: plain fast_rcnn_inference (row I1a)
    h.NMS_TYPE = "iou_guided"  # "iou_guided" | "standard"
    h.NMS_KEY = "iou"  # "iou" (paper) | "cls_x_iou" (OpenMMLab-IoUNet)
    h.NMS_CLASS_BOXES = "argmax"  # "argmax" (OpenMMLab-IoUNet) | "per_class"
    h.PRE_REFINE_TOPK = 100
    h.REFINE = True
    h.REFINE_LAMBDA = 0.5  # paper; OpenMMLab-IoUNet "improved" 2.0
    h.REFINE_STEPS = 5
    h.REFINE_OMEGA1 = 0.001
    h.REFINE_OMEGA2 = -0.01
    h.REFINE_CLIP = True
    h.FINAL_SCORE = "cls_x_iou"  # "cls" | "cls_x_iou"


# ---- aLRP / AP Loss RetinaNet (d2_boxunc.modeling.meta_arch) ---------------------------------
def _add_alrp_config(cfg: CN) -> None:
    """``MODEL.META_ARCHITECTURE: BoxUncRetinaNet`` reads these (see
    docs/design.md#alrp-loss-and-ap-loss).

    The anchors (``MODEL.ANCHOR_GENERATOR``), ``MODEL.RETINANET.BBOX_REG_WEIGHTS`` (10, 10, 5, 5)
    and ``MODEL.RETINANET.SMOOTH_L1_LOSS_BETA`` (1.0 for AP Loss) are detectron2's own keys.
    """
    a = cfg.MODEL.RETINANET.ALRP = CN()
    a.CLS_LOSS_TYPE = "focal"  # "focal" | "ap" | "alrp"
    a.LOC_ERROR = "giou"  # aLRP localisation error: "giou" (1 - GIoU) | "iou" (2 (1 - IoU))
    a.DELTA = 1.0  # half-width of the smoothed step, on logits
    a.EPS = 1e-5  # positives with N_FP <= EPS get no aLRP gradient
    a.IMPL = "sorted"  # "sorted" (fast, exact) | "loop" (reference loop)
    a.SB_WEIGHT_INIT = 50.0
    a.SB_UPDATE = True  # False: fixed weight SB_WEIGHT_INIT
    a.SB_PERIOD = (
        0  # iterations between SB updates; 0 = one epoch of DATASETS.TRAIN at IMS_PER_BATCH
    )
    a.ATSS_TOPK = 0  # > 0: d2_boxunc ATSSMatcher(topk) instead of the IoU Matcher
