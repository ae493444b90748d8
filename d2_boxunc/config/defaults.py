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
    """``MODEL.ROI_HEADS.NAME: KLROIHeads`` reads these (ALGORITHMS.md §1, paper defaults)."""
    kl = cfg.MODEL.ROI_BOX_HEAD.KL = CN()
    kl.BBOX_REG_WEIGHTS = (10.0, 10.0, 10.0, 10.0)  # corner-delta coder, x10 on all coordinates
    kl.DELTA_CLAMP = 1000.0 / 16  # |t / w| clamp when decoding
    kl.LOGVAR_INIT_STD = 1e-4
    kl.SMOOTH_L1_BETA = 1.0  # 0.0: L1 (cxliu0's setting)
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
    pass


# ---- IoU-Net (d2_boxunc.modeling.roi_heads.iou_net_roi_heads) --------------------------------
def _add_iounet_config(cfg: CN) -> None:
    pass


# ---- aLRP / AP Loss RetinaNet (d2_boxunc.modeling.meta_arch) ---------------------------------
def _add_alrp_config(cfg: CN) -> None:
    """``MODEL.META_ARCHITECTURE: BoxUncRetinaNet`` reads these (ALGORITHMS.md §5).

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
    a.SB_PERIOD = 0  # iterations between SB updates; 0 = one epoch of DATASETS.TRAIN at IMS_PER_BATCH
    a.ATSS_TOPK = 0  # > 0: d2_boxunc ATSSMatcher(topk) instead of the IoU Matcher
