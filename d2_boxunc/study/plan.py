"""What the evidence study trains, evaluates and tests: methods, eval-only variants, claims.

Each trained method is one paper config run through the synthetic switch, once per seed.  Its
variants are eval-only runs of the same checkpoints (another config sharing the checkpoint, and/or
overrides).  Each claim compares two (method, variant) rows on one metric, in the direction its
paper states, and gets a verdict from the 95% interval of the difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "BACKBONE_DTYPES",
    "CLAIMS",
    "DEFAULT_BACKBONE_DTYPE",
    "DEFAULT_METHODS",
    "METHODS",
    "Claim",
    "Method",
    "Variant",
    "backbone_overrides",
    "row",
]

# The study's regime on top of ``--synthetic`` (docs/study.md), per method family.
# RetinaNet rows train 1.4x as long: at 1000 iterations focal loss stays at ~26 AP (docs/study.md)
RETINANET_ITER_SCALE = 1.4
RETINANET_MAPPER = ["dataloader.train.mapper._target_=detectron2.data.DatasetMapper"]
# RoIAlign box poolers sample 2 x 2 points per bin, as Detectron (the KL-Loss and GIoU papers'
# code) and the Mask R-CNN paper do.  detectron2's adaptive count (sampling_ratio=0) is sized for
# 800 px inputs and takes up to 16 points per bin from the ~256 px images here, ~5% of a step.
ROI_ALIGN_SAMPLING = ("model.roi_heads.box_pooler.sampling_ratio=2",)

# Every study run's backbone (ResNet + FPN) computes in this dtype under autocast; heads, coders
# and losses stay float32.  bfloat16 cuts a CPU training step by ~29% on AMX-BF16 CPUs at equal AP
# (docs/study.md#wall-time); "float32" is the plain FPN (the setting of the studies before it).
BACKBONE_DTYPES = ("bfloat16", "float16", "float32")
DEFAULT_BACKBONE_DTYPE = "bfloat16"


def backbone_overrides(dtype: str) -> list[str]:
    """The overrides that run every study model's backbone in ``dtype`` (none for float32)."""
    if dtype not in BACKBONE_DTYPES:
        raise ValueError(f"backbone dtype must be one of {BACKBONE_DTYPES}, got {dtype!r}")
    if dtype == "float32":
        return []
    return [
        "model.backbone._target_=d2_boxunc.modeling.backbone.AutocastFPN",
        f"+model.backbone.autocast_dtype={dtype}",
    ]


@dataclass(frozen=True)
class Variant:
    """An eval-only row of a method's checkpoints."""

    name: str
    label: str
    config: str | None = None  # another config sharing the checkpoint
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Method:
    """A trained method: config, training overrides and its eval-only variants."""

    name: str
    label: str
    config: str
    overrides: tuple[str, ...] = ()
    variants: tuple[Variant, ...] = field(default=())
    # controls that isolate one change of a method (bug hunts); run on request, not by "all"
    control: bool = False
    # compositions beyond the papers (e.g. docs/retinanet_heads.md); run on request, not by "all"
    extension: bool = False
    # training length relative to --max-iter (RetinaNet from scratch needs longer, docs/study.md)
    iter_scale: float = 1.0
    # a dense detector: probe score vs IoU on its positive anchors (.ranking_hunt) after training
    ranking_probe: bool = False

    def max_iter(self, study_max_iter: int) -> int:
        """This method's training iterations in a study of ``study_max_iter``."""
        return max(1, round(study_max_iter * self.iter_scale))


KL = "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x"
IOUNET = "configs/IoUNet/iounet_faster_rcnn_R_50_FPN"

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method(
            "baseline",
            "Faster R-CNN, smooth L1",
            "configs/Baselines/faster_rcnn_R_50_FPN_1x.py",
            overrides=ROI_ALIGN_SAMPLING,
        ),
        Method(
            "iou",
            "Faster R-CNN, IoU loss",
            "configs/GIoU/giou_faster_rcnn_R_50_FPN_1x_iou.py",
            overrides=ROI_ALIGN_SAMPLING,
        ),
        Method(
            "giou",
            "Faster R-CNN, GIoU loss",
            "configs/GIoU/giou_faster_rcnn_R_50_FPN_1x.py",
            overrides=ROI_ALIGN_SAMPLING,
        ),
        Method(
            "kl",
            "KL-Loss",
            f"{KL}.py",
            overrides=ROI_ALIGN_SAMPLING,
            variants=(
                Variant("varvote", "KL-Loss + var voting", config=f"{KL}_varvote.py"),
                Variant("softnms", "KL-Loss + soft-NMS", config=f"{KL}_softnms.py"),
                Variant(
                    "varvote_softnms",
                    "KL-Loss + var voting + soft-NMS",
                    config=f"{KL}_varvote_softnms.py",
                ),
            ),
        ),
        Method(
            "kl_ctrl",
            "Faster R-CNN, KL's corner coder + smooth L1 (control)",
            f"{KL}_xyxy.py",
            overrides=ROI_ALIGN_SAMPLING,
            control=True,
        ),
        Method(
            "kl_sg",
            "KL-Loss, variance layer without gradient into the shared features (control)",
            f"{KL}.py",
            overrides=(
                *ROI_ALIGN_SAMPLING,
                "model.roi_heads.box_predictor.logvar_stop_gradient=True",
            ),
            control=True,
        ),
        Method(
            "iounet",
            "IoU-Net (IoU-NMS + refine)",
            f"{IOUNET}_1x.py",
            # 1000 jittered RoIs per image go with 512 R-CNN RoIs; the switch samples 128
            overrides=("model.roi_heads.iou_roi_generator.num_samples=256",),
            variants=(
                Variant("nohead", "IoU-Net, IoU head off (NMS)", config=f"{IOUNET}_1x_nohead.py"),
                Variant("iounms", "IoU-Net, IoU-guided NMS", config=f"{IOUNET}_1x_iounms.py"),
                # the IoU-guided path shares each proposal's argmax-class box among its class
                # candidates; this row runs standard NMS on the very same candidates, so that
                # "iounms" vs "stdnms" isolates the NMS (vs "nohead" it also changes the boxes)
                Variant(
                    "stdnms",
                    "IoU-Net, standard NMS on the IoU path's boxes",
                    config=f"{IOUNET}_1x_iounms.py",
                    overrides=("model.roi_heads.test_nms_type=standard",),
                ),
                Variant(
                    "iounms_perclass",
                    "IoU-Net, IoU-guided NMS, per-class boxes",
                    config=f"{IOUNET}_1x_iounms.py",
                    overrides=("model.roi_heads.test_nms_class_boxes=per_class",),
                ),
                Variant(
                    "lambda2",
                    "IoU-Net, refine lambda 2",
                    overrides=("model.roi_heads.refine_lambda=2.0",),
                ),
                Variant(
                    "clsxiou",
                    "IoU-Net, NMS key cls x IoU",
                    overrides=("model.roi_heads.test_nms_key=cls_x_iou",),
                ),
            ),
        ),
        Method(
            "focal",
            "RetinaNet, focal loss",
            "configs/aLRPLoss/focal_retinanet_R_50_FPN_100ep_512.py",
            overrides=tuple(RETINANET_MAPPER),
            iter_scale=RETINANET_ITER_SCALE,
            ranking_probe=True,
        ),
        Method(
            "alrp",
            "RetinaNet, aLRP Loss",
            "configs/aLRPLoss/alrp_retinanet_R_50_FPN_100ep_512.py",
            overrides=tuple(RETINANET_MAPPER),
            iter_scale=RETINANET_ITER_SCALE,
            ranking_probe=True,
        ),
        Method(
            "aploss",
            "RetinaNet, AP Loss",
            "configs/aLRPLoss/aploss_retinanet_R_50_FPN_100ep_512.py",
            overrides=tuple(RETINANET_MAPPER),
            iter_scale=RETINANET_ITER_SCALE,
            ranking_probe=True,
        ),
    ]
}


# what ``--methods all`` (``make study``) runs: every paper method, no controls
DEFAULT_METHODS: list[str] = [n for n, m in METHODS.items() if not (m.control or m.extension)]


def row(spec: str) -> tuple[str, str | None]:
    """``"kl"`` -> ("kl", None); ``"kl/varvote"`` -> ("kl", "varvote")."""
    method, _, variant = spec.partition("/")
    return method, (variant or None)


@dataclass(frozen=True)
class Claim:
    """``a`` beats ``b`` on ``metric`` (in ``direction``), as ``source`` states.

    ``a`` and ``b`` are rows ``"method"`` or ``"method/variant"``; a claim between rows of one
    method is paired over images on the same checkpoints, otherwise it is seed-level.
    """

    name: str
    a: str
    b: str
    metric: str
    source: str
    direction: int = 1

    @property
    def paired(self) -> bool:
        return row(self.a)[0] == row(self.b)[0]


CLAIMS: list[Claim] = [
    # KL-Loss (He et al., CVPR 2019): Table 1/2 -- voting and soft-NMS add AP, most at high IoU
    Claim(
        "KL + voting + soft-NMS > smooth-L1 baseline",
        "kl/varvote_softnms",
        "baseline",
        "AP",
        "KL-Loss Tab. 2",
    ),
    Claim(
        "KL + voting + soft-NMS > baseline at AP90",
        "kl/varvote_softnms",
        "baseline",
        "AP90",
        "KL-Loss Tab. 2",
    ),
    Claim("variance voting raises AP", "kl/varvote", "kl", "AP", "KL-Loss Tab. 1"),
    Claim("variance voting raises AP90", "kl/varvote", "kl", "AP90", "KL-Loss Tab. 1"),
    Claim(
        "soft-NMS raises AP (after voting)",
        "kl/varvote_softnms",
        "kl/varvote",
        "AP",
        "KL-Loss Tab. 1",
    ),
    Claim("KL loss alone does not lower AP vs smooth L1", "kl", "baseline", "AP", "KL-Loss Tab. 1"),
    Claim(
        "KL loss alone does not lower AP vs its coder control",
        "kl",
        "kl_ctrl",
        "AP",
        "KL-Loss Tab. 1",
    ),
    Claim(
        "KL loss alone, variance kept out of the shared features, vs its coder control",
        "kl_sg",
        "kl_ctrl",
        "AP",
        "KL-Loss Tab. 1",
    ),
    Claim(
        "sigma grows with |error| (Spearman > 0)", "kl", "", "sigma_err_spearman", "KL-Loss Sec. 3"
    ),
    Claim("sigma / size larger on blurred edges", "kl", "", "sigma_blur_gap", "KL-Loss Fig. 1"),
    Claim(
        "variance voting raises mean IoU of matched boxes",
        "kl/varvote",
        "kl",
        "mean_iou",
        "KL-Loss Sec. 3.3",
    ),
    # IoU-Net (Jiang et al., ECCV 2018): Table 1/2, Fig. 2
    Claim(
        "IoU-guided NMS raises AP over NMS",
        "iounet/iounms",
        "iounet/nohead",
        "AP",
        "IoU-Net Tab. 1",
    ),
    Claim(
        "IoU-guided NMS raises AP90 over NMS",
        "iounet/iounms",
        "iounet/nohead",
        "AP90",
        "IoU-Net Tab. 1",
    ),
    Claim(
        "IoU-guided NMS raises AP over NMS, same boxes",
        "iounet/iounms",
        "iounet/stdnms",
        "AP",
        "IoU-Net Tab. 1",
    ),
    Claim(
        "NMS key cls x IoU raises AP over key IoU",
        "iounet/clsxiou",
        "iounet",
        "AP",
        "OpenMMLab-IoUNet",
    ),
    Claim(
        "refinement raises AP over IoU-guided NMS",
        "iounet",
        "iounet/iounms",
        "AP",
        "IoU-Net Tab. 2",
    ),
    Claim("refinement raises AP90", "iounet", "iounet/iounms", "AP90", "IoU-Net Tab. 2"),
    Claim(
        "refinement raises mean IoU of matched boxes",
        "iounet",
        "iounet/iounms",
        "mean_iou",
        "IoU-Net Sec. 3.3",
    ),
    Claim("IoU-Net (IoU-NMS + refine) > baseline", "iounet", "baseline", "AP", "IoU-Net Tab. 4"),
    Claim(
        "predicted IoU tracks IoU better than class score",
        "iounet",
        "",
        "iou_vs_score_spearman_gap",
        "IoU-Net Fig. 2",
    ),
    # GIoU (Rezatofighi et al., CVPR 2019): Table 3 (Faster R-CNN)
    Claim("IoU loss > smooth L1", "iou", "baseline", "AP", "GIoU Tab. 3"),
    Claim("GIoU loss > smooth L1", "giou", "baseline", "AP", "GIoU Tab. 3"),
    Claim("GIoU loss >= IoU loss", "giou", "iou", "AP", "GIoU Tab. 3"),
    Claim("GIoU loss > smooth L1 at AP75", "giou", "baseline", "AP75", "GIoU Tab. 3"),
    # aLRP Loss (Oksuz et al., NeurIPS 2020): Table 3/4; AP Loss (Chen et al., CVPR 2019)
    Claim("aLRP Loss > focal loss", "alrp", "focal", "AP", "aLRP Tab. 4"),
    Claim("aLRP Loss > AP Loss", "alrp", "aploss", "AP", "aLRP Tab. 4"),
    Claim("AP Loss > focal loss", "aploss", "focal", "AP", "AP Loss Tab. 3"),
    Claim(
        "aLRP: positive anchors' scores follow their IoU more than focal's",
        "alrp",
        "focal",
        "pos_score_iou_spearman",
        "aLRP Sec. 1 / Fig. 1",
    ),
    Claim(
        "aLRP: an object's better-localised anchors rank higher than with focal",
        "alrp",
        "focal",
        "pos_within_object_spearman",
        "aLRP Sec. 1 / Fig. 1",
    ),
    Claim(
        "aLRP: matched detections' scores follow their IoU more than focal's",
        "alrp",
        "focal",
        "score_iou_spearman",
        "aLRP Sec. 1 / Fig. 1",
    ),
    Claim("aLRP Loss > AP Loss at AP90", "alrp", "aploss", "AP90", "aLRP Sec. 1 / Fig. 1"),
    Claim(
        "aLRP Loss lowers oLRP vs focal loss", "alrp", "focal", "oLRP", "aLRP Tab. 4", direction=-1
    ),
]


# ---- RetinaNet sigma / IoU branches and aLRP + sigma (docs/retinanet_heads.md) ---------------
# Extensions, run on request: ``--methods retina_kl,retina_iouaware,alrp_sigma`` (and the coder
# controls ``retina_kl_ctrl``, ``alrp_xyxy``). Every row shares the RetinaNet rows' recipe.
_RETINA_KL = "configs/KLLoss/kl_retinanet_R_50_FPN_100ep_512.py"
_RETINA_IOU = "configs/aLRPLoss/iouaware_retinanet_R_50_FPN_100ep_512.py"
_ALRP_SIGMA = "configs/Composed/alrp_sigma_retinanet_R_50_FPN_100ep_512.py"
# the sigma branch's corner coder (x10) on a row without the branch: isolates the coder change
_CORNER_CODER = (
    "model.box2box_transform._target_=d2_boxunc.modeling.box_regression.Box2BoxTransformXYXY",
    "model.box2box_transform.weights=[10,10,10,10]",
)
_NO_VOTING = ("model.test_var_voting=False",)

RETINA_BRANCH_METHODS: list[Method] = [
    Method(
        "retina_kl",
        "RetinaNet, focal + KL sigma branch, var voting",
        _RETINA_KL,
        overrides=tuple(RETINANET_MAPPER),
        iter_scale=RETINANET_ITER_SCALE,
        extension=True,
        variants=(
            Variant("novote", "RetinaNet, focal + KL sigma branch, NMS", overrides=_NO_VOTING),
            Variant(
                "varvote_softnms",
                "RetinaNet, focal + KL sigma branch, var voting + soft-NMS",
                config=_RETINA_KL.replace(".py", "_varvote_softnms.py"),
            ),
        ),
    ),
    Method(
        "retina_kl_ctrl",
        "RetinaNet, focal, KL's corner coder + smooth L1 (control)",
        "configs/aLRPLoss/focal_retinanet_R_50_FPN_100ep_512.py",
        overrides=(*RETINANET_MAPPER, *_CORNER_CODER),
        iter_scale=RETINANET_ITER_SCALE,
        control=True,
    ),
    Method(
        "retina_iouaware",
        "IoU-aware RetinaNet (score cls^0.5 IoU^0.5)",
        _RETINA_IOU,
        overrides=tuple(RETINANET_MAPPER),
        iter_scale=RETINANET_ITER_SCALE,
        extension=True,
        variants=(
            Variant(
                "clsonly",
                "IoU-aware RetinaNet, ranked by the class score",
                config=_RETINA_IOU.replace(".py", "_clsonly.py"),
            ),
        ),
    ),
    Method(
        "alrp_sigma",
        "RetinaNet, aLRP Loss + KL sigma branch, var voting",
        _ALRP_SIGMA,
        overrides=tuple(RETINANET_MAPPER),
        iter_scale=RETINANET_ITER_SCALE,
        extension=True,
        variants=(
            Variant("novote", "RetinaNet, aLRP Loss + KL sigma branch, NMS", overrides=_NO_VOTING),
        ),
    ),
    Method(
        "alrp_xyxy",
        "RetinaNet, aLRP Loss, KL's corner coder (control)",
        "configs/aLRPLoss/alrp_retinanet_R_50_FPN_100ep_512.py",
        overrides=(*RETINANET_MAPPER, *_CORNER_CODER),
        iter_scale=RETINANET_ITER_SCALE,
        control=True,
    ),
]
METHODS.update({m.name: m for m in RETINA_BRANCH_METHODS})

_OURS = "ours, docs/retinanet_heads.md"
CLAIMS += [
    # KL-Loss's sigma and voting on a one-stage detector (KL-Loss Tab. 1 is on Faster R-CNN)
    Claim("RetinaNet: variance voting raises AP90", "retina_kl", "retina_kl/novote", "AP90", _OURS),
    Claim("RetinaNet: variance voting raises AP", "retina_kl", "retina_kl/novote", "AP", _OURS),
    Claim(
        "RetinaNet: KL loss alone does not lower AP vs its coder control",
        "retina_kl/novote",
        "retina_kl_ctrl",
        "AP",
        _OURS,
    ),
    Claim(
        "RetinaNet: sigma grows with |error| (Spearman > 0)",
        "retina_kl",
        "",
        "sigma_err_spearman",
        _OURS,
    ),
    # IoU-aware RetinaNet (Wu et al.): the IoU-aware score ranks detections better
    Claim(
        "IoU-aware score raises AP over the class score",
        "retina_iouaware",
        "retina_iouaware/clsonly",
        "AP",
        "IoU-aware RetinaNet (Wu et al.)",
    ),
    Claim(
        "IoU-aware score raises AP75 over the class score",
        "retina_iouaware",
        "retina_iouaware/clsonly",
        "AP75",
        "IoU-aware RetinaNet (Wu et al.)",
    ),
    Claim(
        "IoU-aware RetinaNet > focal RetinaNet",
        "retina_iouaware",
        "focal",
        "AP",
        "IoU-aware RetinaNet (Wu et al.)",
    ),
    # aLRP + sigma (docs/retinanet_heads.md#alrp-and-sigma)
    Claim(
        "aLRP + sigma: variance voting raises AP90",
        "alrp_sigma",
        "alrp_sigma/novote",
        "AP90",
        _OURS,
    ),
    Claim("aLRP + sigma + voting > aLRP", "alrp_sigma", "alrp", "AP", _OURS),
    Claim("aLRP + sigma + voting > aLRP at AP90", "alrp_sigma", "alrp", "AP90", _OURS),
    Claim(
        "the sigma branch does not lower aLRP's AP vs its coder control",
        "alrp_sigma/novote",
        "alrp_xyxy",
        "AP",
        _OURS,
    ),
]

# ---- Composed Faster R-CNN: KL sigma + IoU-Net + GIoU (docs/composition.md) -------------------
# Run on request (``--methods baseline,composed``): added after DEFAULT_METHODS, so ``all`` keeps
# the paper methods. Its variants switch one inference step off on the same checkpoints.
COMPOSED = "configs/Composed/kl_iounet_giou_faster_rcnn_R_50_FPN_1x.py"
METHODS["composed"] = Method(
    "composed",
    "Composed: GIoU box + KL sigma + IoU-Net (IoU-NMS, voting, refine)",
    COMPOSED,
    extension=True,
    # as "iounet": the synthetic switch samples 128 R-CNN RoIs per image
    overrides=("model.roi_heads.iou_roi_generator.num_samples=256",),
    variants=(
        Variant(
            "novote",
            "Composed, no variance voting",
            overrides=("model.roi_heads.box_predictor.test_var_voting=False",),
        ),
        Variant("norefine", "Composed, no refinement", overrides=("model.roi_heads.refine=False",)),
        Variant(
            "stdnms",
            "Composed, standard NMS instead of IoU-guided",
            overrides=("model.roi_heads.test_nms_type=standard",),
        ),
        Variant(
            "nohead",
            "Composed, IoU head off (KL inference: NMS + voting)",
            overrides=("model.roi_heads.test_iou_head=False",),
        ),
    ),
)
# the control of the KL-Loss hunt (kl_sg) on the composed model: the sigma layer reads the
# shared box-head features without sending its gradient into them
METHODS["composed_sg"] = Method(
    "composed_sg",
    "Composed, sigma layer without gradient into the shared features (control)",
    COMPOSED,
    control=True,
    overrides=(
        *METHODS["composed"].overrides,
        "model.roi_heads.box_predictor.logvar_stop_gradient=True",
    ),
)
CLAIMS += [
    Claim("Composed > smooth-L1 baseline", "composed", "baseline", "AP", "composition"),
    Claim("Composed > baseline at AP90", "composed", "baseline", "AP90", "composition"),
    Claim("Composed > GIoU loss alone", "composed", "giou", "AP", "composition"),
    Claim(
        "variance voting raises AP on the composed model",
        "composed",
        "composed/novote",
        "AP",
        "KL-Loss Tab. 1",
    ),
    Claim(
        "variance voting raises AP90 on the composed model",
        "composed",
        "composed/novote",
        "AP90",
        "KL-Loss Tab. 1",
    ),
    Claim(
        "refinement raises AP on the composed model",
        "composed",
        "composed/norefine",
        "AP",
        "IoU-Net Tab. 2",
    ),
    Claim(
        "refinement raises AP90 on the composed model",
        "composed",
        "composed/norefine",
        "AP90",
        "IoU-Net Tab. 2",
    ),
    Claim(
        "composed: sigma grows with |error| (Spearman > 0)",
        "composed",
        "",
        "sigma_err_spearman",
        "KL-Loss Sec. 3",
    ),
    Claim(
        "composed: predicted IoU tracks IoU better than class score",
        "composed",
        "",
        "iou_vs_score_spearman_gap",
        "IoU-Net Fig. 2",
    ),
    Claim(
        "IoU-Net's inference beats KL-Loss's (NMS + voting) on the composed model",
        "composed",
        "composed/nohead",
        "AP",
        "IoU-Net Tab. 1-2",
    ),
    Claim(
        "IoU-guided NMS raises AP on the composed model",
        "composed",
        "composed/stdnms",
        "AP",
        "IoU-Net Tab. 1",
    ),
    Claim(
        "composed: keeping sigma's gradient out of the shared features raises AP",
        "composed_sg",
        "composed",
        "AP",
        "control, as kl_sg (docs/study.md)",
    ),
]
