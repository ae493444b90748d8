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
    pass


# ---- IoU / GIoU / ln-IoU losses (d2_boxunc.modeling.roi_heads.iou_loss_fast_rcnn, .rpn) -------
def _add_iou_loss_config(cfg: CN) -> None:
    pass


# ---- IoU-Net (d2_boxunc.modeling.roi_heads.iou_net_roi_heads) --------------------------------
def _add_iounet_config(cfg: CN) -> None:
    pass


# ---- aLRP / AP Loss RetinaNet (d2_boxunc.modeling.meta_arch) ---------------------------------
def _add_alrp_config(cfg: CN) -> None:
    pass
