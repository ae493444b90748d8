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
    """Keys of ``MODEL.ROI_HEADS.NAME: IoULossROIHeads`` and ``MODEL.PROPOSAL_GENERATOR.NAME:
    IoULossRPN`` (ALGORITHMS.md §4). The loss types stay detectron2's own keys,
    ``MODEL.ROI_BOX_HEAD.BBOX_REG_LOSS_TYPE`` and ``MODEL.RPN.BBOX_REG_LOSS_TYPE``, which these
    classes extend with ``"iou"`` and ``"ln_iou"`` (``"giou"`` becomes ours)."""
    if "BOXUNC" not in cfg.MODEL:
        cfg.MODEL.BOXUNC = CN()
    node = cfg.MODEL.BOXUNC.IOU_LOSS = CN()
    node.ROI_WEIGHT = 10.0  # weight of loss_box_reg for iou / ln_iou / giou (GIoU repo: 10)
    node.RPN_WEIGHT = 1.0  # weight of loss_rpn_loc for iou / ln_iou / giou (GIoU repo: 1)
    node.RPN_NORM = "batch"  # "batch" (detectron2) | "actual" (sampled anchors per image, GIoU repo)
    node.EPS = 1e-7  # added to the union and the enclosing area


# ---- IoU-Net (d2_boxunc.modeling.roi_heads.iou_net_roi_heads) --------------------------------
def _add_iounet_config(cfg: CN) -> None:
    pass


# ---- aLRP / AP Loss RetinaNet (d2_boxunc.modeling.meta_arch) ---------------------------------
def _add_alrp_config(cfg: CN) -> None:
    pass
