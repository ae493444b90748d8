"""IoU-Net ROI heads (Jiang et al., ECCV 2018): an IoU branch beside the R-CNN branch, IoU-guided
NMS and optimisation-based box refinement. Design: docs/design.md#iou-net.

Training adds ``loss_iou``: the IoU head (:class:`~d2_boxunc.modeling.roi_heads.iou_head.IoUHead`)
on PrRoIPool features of IoU-balanced jittered ground-truth boxes
(:class:`~d2_boxunc.modeling.roi_heads.iou_roi_generator.IoURoIGenerator`); the R-CNN losses are
detectron2's, on RPN proposals.

Inference (docs/design.md#iou-net-inference), each stage switchable so that every ablation row is
an eval-only variant of one checkpoint:

1. softmax scores and regressed boxes (clipped) from the R-CNN branch;
2. ``test_iou_head=False``: detectron2's ``fast_rcnn_inference`` (row I1a; no ``pred_ious``);
3. otherwise the IoU head scores the regressed boxes (the argmax-class box of each proposal,
   shared by all its candidates, or each class's own box with ``test_nms_class_boxes="per_class"``);
4. candidates with cls score >= ``test_score_thresh``, per-class NMS: ``test_nms_type="iou_guided"``
   (key ``"iou"`` = paper, ``"cls_x_iou"`` = OpenMMLab-IoUNet's improvement; a kept box's score is
   its cluster's max cls score), ``"standard"`` (detectron2's NMS on the cls score) or ``"diou"``
   (DIoU-NMS on the cls score, Zheng et al., AAAI 2020); then the
   :meth:`IoUNetROIHeads.update_kept` hook (nothing here; variance voting in
   :class:`~d2_boxunc.modeling.roi_heads.KLIoUNetROIHeads`);
5. with ``refine=True``: the top ``test_pre_refine_topk`` are refined by gradient ascent on their
   predicted IoU (docs/design.md#box-refinement), all boxes of all images in one batch;
6. score: ``final_score="cls"`` or ``"cls_x_iou"`` (x the IoU after refinement); top
   ``test_topk_per_image``.

Output Instances carry ``pred_boxes``, ``scores``, ``pred_classes``, ``pred_ious`` (predicted IoU
of the output box, its own class) and ``cls_scores`` (the cls score before any IoU factor).
"""

from __future__ import annotations

import copy
import functools
import logging

import torch
from detectron2.layers import batched_nms, cat, nonzero_tuple
from detectron2.modeling.poolers import ROIPooler, assign_boxes_to_levels
from detectron2.modeling.roi_heads import StandardROIHeads
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import get_event_storage
from torch import Tensor, nn

from d2_boxunc.layers import batched_diou_nms, batched_iou_guided_nms
from d2_boxunc.modeling.box_regression import clip_boxes
from d2_boxunc.modeling.poolers import PrRoIPooler
from d2_boxunc.modeling.roi_heads.iou_roi_generator import IoURoIGenerator

__all__ = ["IoUNetROIHeads"]

logger = logging.getLogger(__name__)

NMS_TYPES = ("standard", "iou_guided", "diou")
NMS_KEYS = ("iou", "cls_x_iou")
CLASS_BOXES = ("argmax", "per_class")
FINAL_SCORES = ("cls", "cls_x_iou")
MIN_SIZE = 1e-2  # refined boxes keep x2 >= x1 + MIN_SIZE (docs/design.md#box-refinement)


def _check(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _host_reads_are_free(tensor: Tensor) -> bool:
    """Whether reading ``tensor``'s values on the host costs no device sync (a CPU tensor)."""
    return tensor.device.type == "cpu"


def _refinement_maps(features: list[Tensor]) -> Tensor:
    """The IoU branch's maps as one batch for the refinement's single pooling call per step.

    Level ``l`` of image ``i`` is batch entry ``l * N + i``, every level zero-padded (at the bottom
    and right) to the largest map. PrRoIPool's interpolant is zero outside a map, so the padding
    changes no pooled value or gradient; one call then pools every box on its own level, with no
    per-level split whose sizes would be read from the device (docs/gpu.md#host-syncs). A single
    level is not padded. The CPU kernel reads a channels-last map in place and transposes an NCHW
    one at every call, so on the CPU the batch is channels-last; the CUDA kernel reads either
    layout through its strides (docs/gpu.md#layouts), so a single CUDA map is used as it is.
    """
    cpu = features[0].device.type == "cpu"
    fmt = torch.channels_last if cpu else torch.contiguous_format
    if len(features) == 1:
        feature = features[0].detach().float()
        return feature.contiguous(memory_format=fmt) if cpu else feature
    n, c = features[0].shape[:2]
    height = functools.reduce(torch.sym_max, [f.shape[2] for f in features])
    width = functools.reduce(torch.sym_max, [f.shape[3] for f in features])
    shape = (len(features) * n, c, height, width)
    out = torch.empty(shape, dtype=torch.float32, device=features[0].device, memory_format=fmt)
    for level, f in enumerate(features):
        h, w = f.shape[2:]
        dst = out[level * n : (level + 1) * n]
        dst[:, :, :h, :w] = f.detach()
        dst[:, :, h:].zero_()  # only the padding is zeroed
        dst[:, :, :h, w:].zero_()
    return out


class IoUNetROIHeads(StandardROIHeads):
    """``StandardROIHeads`` plus IoU-Net's IoU branch. See the module docstring."""

    def __init__(
        self,
        *,
        iou_pooler: ROIPooler,
        iou_head: nn.Module,
        iou_roi_generator: IoURoIGenerator,
        iou_in_features: list[str] | None = None,
        test_iou_head: bool = True,
        test_nms_type: str = "iou_guided",
        test_nms_key: str = "iou",
        test_nms_class_boxes: str = "argmax",
        test_pre_refine_topk: int = 100,
        refine: bool = True,
        refine_lambda: float = 0.5,
        refine_steps: int = 5,
        refine_omega1: float = 0.001,
        refine_omega2: float = -0.01,
        refine_clip: bool = True,
        final_score: str = "cls_x_iou",
        **kwargs,
    ):
        """
        Args (beyond :class:`StandardROIHeads`'s):
            iou_pooler (ROIPooler): pooler of the IoU branch; must be a :class:`PrRoIPooler` for
                refinement (box coordinates need gradients).
            iou_head (nn.Module): an :class:`IoUHead` (``forward``, ``select``, ``predict_iou``,
                ``losses``).
            iou_roi_generator (IoURoIGenerator): jittered training RoIs.
            iou_in_features (list[str]): feature maps of the IoU branch. Default: box_in_features.
            test_iou_head (bool): run the IoU branch at test time (False = row I1a).
            test_nms_type (str): ``"iou_guided"``, ``"standard"`` or ``"diou"`` (DIoU-NMS by cls
                score).
            test_nms_key (str): IoU-guided NMS ranking key, ``"iou"`` (paper) or ``"cls_x_iou"``.
            test_nms_class_boxes (str): ``"argmax"`` (OpenMMLab-IoUNet: every class's candidate
                uses the argmax-class box) or ``"per_class"`` (each class's own regressed box).
            test_pre_refine_topk (int): boxes per image kept for refinement (paper 100).
            refine (bool): optimisation-based refinement (paper Alg. 2).
            refine_lambda (float): step size lambda (paper 0.5, OpenMMLab-IoUNet "improved" 2.0).
            refine_steps (int): T. refine_omega1 (float): early-stop |delta IoU| threshold.
            refine_omega2 (float): degeneration tolerance (stop when delta IoU < it).
            refine_clip (bool): clip refined boxes to the image and keep them non-inverted.
            final_score (str): ``"cls"`` or ``"cls_x_iou"`` (score x predicted IoU).
        """
        super().__init__(**kwargs)
        _check("test_nms_type", test_nms_type, NMS_TYPES)
        _check("test_nms_key", test_nms_key, NMS_KEYS)
        _check("test_nms_class_boxes", test_nms_class_boxes, CLASS_BOXES)
        _check("final_score", final_score, FINAL_SCORES)
        if refine_steps < 0 or test_pre_refine_topk <= 0:
            raise ValueError("refine_steps must be >= 0 and test_pre_refine_topk > 0")
        if refine and not isinstance(iou_pooler, PrRoIPooler):
            logger.warning(
                "IoUNetROIHeads: refinement needs a PrRoIPooler as iou_pooler to get "
                "useful coordinate gradients, got %s",
                type(iou_pooler).__name__,
            )
        self.iou_in_features = list(iou_in_features or self.box_in_features)
        self.iou_pooler = iou_pooler
        self.iou_head = iou_head
        self.iou_roi_generator = iou_roi_generator
        self.test_iou_head = test_iou_head
        self.test_nms_type = test_nms_type
        self.test_nms_key = test_nms_key
        self.test_nms_class_boxes = test_nms_class_boxes
        self.test_pre_refine_topk = test_pre_refine_topk
        self.refine = refine
        self.refine_lambda = refine_lambda
        self.refine_steps = refine_steps
        self.refine_omega1 = refine_omega1
        self.refine_omega2 = refine_omega2
        self.refine_clip = refine_clip
        self.final_score = final_score

    # ---- training --------------------------------------------------------------------------
    def forward(
        self,
        images: ImageList,
        features: dict[str, Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ) -> tuple[list[Instances], dict[str, Tensor]]:
        if not self.training:
            return super().forward(images, features, proposals, targets)
        if not targets:
            raise ValueError("IoUNetROIHeads: 'targets' are required during training")
        del images
        proposals = self.label_and_sample_proposals(proposals, targets)
        losses = self._forward_box(features, proposals)
        losses.update(self._forward_iou_train(features, targets))
        losses.update(self._forward_mask(features, proposals))
        losses.update(self._forward_keypoint(features, proposals))
        return proposals, losses

    def _forward_iou_train(self, features: dict[str, Tensor], targets: list[Instances]):
        samples = self.iou_roi_generator(
            [t.gt_boxes.tensor for t in targets],
            [t.gt_classes for t in targets],
            [t.image_size for t in targets],
        )
        rois = [Boxes(s[0]) for s in samples]
        target_ious = cat([s[1] for s in samples])
        classes = cat([s[2] for s in samples])
        pooled = self.iou_pooler([features[f] for f in self.iou_in_features], rois)
        raw = self.iou_head(pooled)
        loss = self.iou_head.losses(raw, classes, target_ious)
        self._log_iou_stats(raw.detach(), classes, target_ious, len(targets))
        return {"loss_iou": loss}

    def _log_iou_stats(self, raw, classes, target_ious, num_images) -> None:
        try:
            storage = get_event_storage()
        except AssertionError:  # outside a trainer
            return
        storage.put_scalar("iou_head/num_rois", raw.shape[0] / max(num_images, 1))
        if raw.shape[0]:
            pred = self.iou_head.predict_iou(self.iou_head.select(raw, classes))
            storage.put_scalar("iou_head/mean_abs_err", (pred - target_ious).abs().mean().item())
            storage.put_scalar("iou_head/mean_target", target_ious.mean().item())

    # ---- inference -------------------------------------------------------------------------
    @property
    def _test_predictor(self):
        """The box predictor whose ``test_score_thresh`` / ``test_nms_thresh`` /
        ``test_topk_per_image`` the IoU-Net inference uses (a cascade's last stage)."""
        return self.box_predictor

    def _forward_box(self, features: dict[str, Tensor], proposals: list[Instances]):
        if self.training or not self.test_iou_head:
            return super()._forward_box(features, proposals)
        box_features = self.box_pooler(
            [features[f] for f in self.box_in_features], [x.proposal_boxes for x in proposals]
        )
        predictions = self.box_predictor(self.box_head(box_features))
        del box_features
        boxes = self.box_predictor.predict_boxes(predictions, proposals)
        scores = self.box_predictor.predict_probs(predictions, proposals)
        return self.iou_net_inference(
            [features[f] for f in self.iou_in_features],
            boxes,
            scores,
            [p.image_size for p in proposals],
            box_extras=self.box_extras(predictions, proposals),
        )

    def box_extras(self, predictions, proposals: list[Instances]) -> list[Tensor] | None:
        """Extension point: per-image ``Tensor[R_i, num_reg * D]``, D values per regressed box,
        that travel with the boxes through inference (see :meth:`iou_net_inference`), or None.
        IoU-Net has none; :class:`~d2_boxunc.modeling.roi_heads.KLIoUNetROIHeads` passes KL-Loss's
        log-variances."""
        return None

    def update_kept(self, features: list[Tensor], cands: list, kept: list) -> None:
        """Extension point between the NMS and the refinement: may replace, in place, the boxes
        ``kept[i][0]`` and their predicted IoUs ``kept[i][3]`` of each image ``i``. ``kept[i]`` is
        ``[boxes, scores, classes, ious, extras]`` of the kept boxes, ``cands[i]`` the image's
        candidates (:meth:`_candidates`). IoU-Net changes nothing."""

    def predict_ious(self, features: list[Tensor], boxes: list[Tensor], classes: Tensor) -> Tensor:
        """Predicted IoU (in [0, 1]) of each box for its class.

        Args:
            features: the IoU branch's feature maps.
            boxes: one Tensor[n_i, 4] per image. classes: Tensor[sum n_i] of class ids.
        Returns:
            Tensor[sum n_i], differentiable w.r.t. the boxes through PrRoIPool.
        """
        raw = self.iou_head(self.iou_pooler(features, [Boxes(b) for b in boxes]))
        return self.iou_head.predict_iou(self.iou_head.select(raw, classes))

    def _candidates(self, boxes: Tensor, scores: Tensor, image_size, extras: Tensor | None = None):
        """One image: (boxes, cls scores, classes, extras) of its candidates, the (proposal,
        class) pairs with finite boxes, scores (and extras) and a cls score >= ``test_score_thresh``.
        A candidate's box is its proposal's argmax-class box (OpenMMLab-IoUNet; every candidate of
        a proposal shares it) or its own class's box (``per_class``); ``extras`` (``Tensor[R,
        num_reg * D]`` or None, :meth:`box_extras`) gives the rows of that box. One mask and one
        ``nonzero``: the candidate count is the only value this reads on the host."""
        num_classes = scores.shape[1] - 1
        num_reg = boxes.shape[1] // 4
        valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
        if extras is not None:
            valid = valid & torch.isfinite(extras).all(dim=1)
        fg = scores[:, :num_classes]
        rows, classes = nonzero_tuple(
            (fg >= self._test_predictor.test_score_thresh) & valid[:, None]
        )
        boxes = clip_boxes(boxes.view(-1, num_reg, 4), image_size)
        if num_reg == 1:
            reg = torch.zeros_like(rows)
        elif self.test_nms_class_boxes == "argmax":
            reg = fg.argmax(dim=1)[rows]
        else:
            reg = classes
        cand_extras = (
            None
            if extras is None
            else extras.view(-1, num_reg, extras.shape[1] // num_reg)[rows, reg]
        )
        return boxes[rows, reg], fg[rows, classes], classes, cand_extras

    def iou_net_inference(
        self,
        features: list[Tensor],
        boxes: list[Tensor] | tuple[Tensor, ...],
        scores: list[Tensor] | tuple[Tensor, ...],
        image_sizes: list[tuple[int, int]],
        box_extras: list[Tensor] | None = None,
    ) -> list[Instances]:
        """Stages 2-6 of docs/design.md#iou-net-inference for a batch; see the module docstring.

        ``box_extras`` (optional, from :meth:`box_extras`): per-image ``Tensor[R_i, num_reg * D]``
        selected with each candidate's box; rows with a non-finite value are dropped like
        non-finite boxes, and each output then carries ``box_extras`` (k, D) of its box.
        """
        if box_extras is None:
            box_extras = [None] * len(boxes)
        cands = [
            self._candidates(b, s, hw, x)
            for b, s, hw, x in zip(boxes, scores, image_sizes, box_extras)
        ]
        # IoU head once for the whole batch, each candidate's own class (the class-aware head
        # scores a box shared by several candidates once per class)
        with torch.no_grad():
            raw = self.iou_head(self.iou_pooler(features, [Boxes(c[0]) for c in cands]))
            all_ious = self.iou_head.predict_iou(
                self.iou_head.select(raw, cat([c[2] for c in cands]))
            )
        all_ious = all_ious.split([c[0].shape[0] for c in cands])

        kept = []
        for (c_boxes, c_scores, c_classes, c_extras), c_ious in zip(cands, all_ious):
            if self.test_nms_type == "iou_guided":
                keep, out_scores = batched_iou_guided_nms(
                    c_boxes,
                    c_scores,
                    c_ious,
                    c_classes,
                    self._test_predictor.test_nms_thresh,
                    multiply_cls=self.test_nms_key == "cls_x_iou",
                )
            else:
                nms = batched_diou_nms if self.test_nms_type == "diou" else batched_nms
                keep = nms(c_boxes, c_scores, c_classes, self._test_predictor.test_nms_thresh)
                out_scores = c_scores[keep]
            order = torch.argsort(out_scores, descending=True, stable=True)
            if self.refine:
                order = order[: self.test_pre_refine_topk]
            keep, out_scores = keep[order], out_scores[order]
            k_extras = None if c_extras is None else c_extras[keep]
            kept.append([c_boxes[keep], out_scores, c_classes[keep], c_ious[keep], k_extras])
        self.update_kept(features, cands, kept)

        if self.refine and self.refine_steps > 0:
            new_boxes, new_ious = self.refine_boxes(
                features, [k[0] for k in kept], [k[2] for k in kept], image_sizes
            )
            for k, b, i in zip(kept, new_boxes, new_ious):
                k[0], k[3] = b, i

        results = []
        for (k_boxes, k_scores, k_classes, k_ious, k_extras), hw in zip(kept, image_sizes):
            # a smooth-L1 head maps its output linearly to IoU and can step outside [0, 1]
            k_ious = k_ious.clamp(0.0, 1.0)
            final = k_scores * k_ious if self.final_score == "cls_x_iou" else k_scores
            order = torch.argsort(final, descending=True, stable=True)
            if self._test_predictor.test_topk_per_image >= 0:
                order = order[: self._test_predictor.test_topk_per_image]
            inst = Instances(hw)
            inst.pred_boxes = Boxes(k_boxes[order].detach())
            inst.scores = final[order].detach()
            inst.pred_classes = k_classes[order]
            inst.pred_ious = k_ious[order].detach()
            inst.cls_scores = k_scores[order].detach()
            if k_extras is not None:
                inst.box_extras = k_extras[order].detach()
            results.append(inst)
        return results

    def _sanitize(self, boxes: Tensor, hw: Tensor) -> Tensor:
        """Clip to the image and keep ``x2 >= x1 + MIN_SIZE``, ``y2 >= y1 + MIN_SIZE``."""
        h, w = hw[:, 0], hw[:, 1]
        x1 = torch.minimum(boxes[:, 0].clamp(min=0.0), w - MIN_SIZE)
        y1 = torch.minimum(boxes[:, 1].clamp(min=0.0), h - MIN_SIZE)
        x2 = torch.minimum(torch.maximum(boxes[:, 2], x1 + MIN_SIZE), w)
        y2 = torch.minimum(torch.maximum(boxes[:, 3], y1 + MIN_SIZE), h)
        return torch.stack([x1, y1, x2, y2], dim=1)

    def refine_boxes(
        self,
        features: list[Tensor],
        boxes: list[Tensor],
        classes: list[Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Optimisation-based refinement (paper Alg. 2, docs/design.md#box-refinement), batched over
        every box of every image: ``T`` steps of ``B += lambda * dIoU/dB * [w, h, w, h]`` on the
        predicted IoU of each box's own class; a box stops when ``|dIoU| < Omega1`` or
        ``dIoU < Omega2`` (the step that triggered the stop is kept). Gradients go only to a fresh
        box leaf through ``torch.autograd.grad``, under ``enable_grad`` (works inside ``no_grad``
        and ``inference_mode``); parameters' ``.grad`` are never touched. The FPN level of each box is
        chosen once, from its starting size (the level choice has no gradient anyway,
        docs/design.md#prroipool-in-the-fpn-pooler).

        No step reads a device value on the host (docs/gpu.md#host-syncs): all boxes are evaluated
        at each step, with the same shapes, and a stopped box keeps its state (``torch.where``; on
        the CPU, where a host read is free, only the active boxes are evaluated and the loop ends
        when none is left, with the same result). One PrRoIPool call on :func:`_refinement_maps`
        pools every box on its own level: batch index ``level * N + image``, coordinates scaled
        by the level's ``spatial_scale`` beforehand (an exact product for power-of-two strides).
        The per-image split uses the box counts, known on the host.

        Returns:
            (refined boxes, their predicted IoUs), one Tensor per image.
        """
        counts = [b.shape[0] for b in boxes]  # symbolic sizes while exporting: no len()
        exporting = torch.compiler.is_exporting()
        if not exporting and sum(counts) == 0:
            return list(boxes), [b.new_zeros((0,)) for b in boxes]
        device = boxes[0].device
        with torch.inference_mode(False), torch.enable_grad():
            maps = _refinement_maps(features)
            pool, level_scales = self._refinement_pool()
            B = cat([b.detach().float() for b in boxes]).clone()
            C = cat(list(classes)).clone()
            img = cat([torch.full((c,), i, device=device) for i, c in enumerate(counts)])
            hw = cat(
                [
                    torch.stack([B.new_full((c,), h), B.new_full((c,), w)], 1)
                    for c, (h, w) in zip(counts, image_sizes)
                ]
            )
            levels = self._fixed_levels(B)
            scale = B.new_full((B.shape[0], 1), level_scales[0])
            for lvl in range(1, len(level_scales)):  # Python numbers: no host->device copy
                scale = torch.where(levels[:, None] == lvl, level_scales[lvl], scale)
            batch = (levels * features[0].shape[0] + img).to(B.dtype)[:, None]

            def evaluate(b: Tensor, with_grad: bool, rows: Tensor | None = None):
                """(IoU, d IoU / d box) of every box, or of ``rows`` only."""
                bt, sc, cl = batch, scale, C
                if rows is not None:
                    b, bt, sc, cl = b[rows], bt[rows], sc[rows], cl[rows]
                b = b.detach().requires_grad_(with_grad and not exporting)
                rois = torch.cat([bt, b * sc], dim=1)
                if exporting and with_grad:  # explicit backward: export cannot trace autograd
                    iou, grad = self._iou_and_box_grad(pool, maps, rois, cl)
                    return iou, grad * sc
                raw = self.iou_head(pool(maps, rois))
                iou = self.iou_head.predict_iou(self.iou_head.select(raw, cl))
                if not with_grad:
                    return iou.detach(), None
                (g,) = torch.autograd.grad(iou.sum(), b)
                return iou.detach(), g

            # where a host read is free (CPU), only the boxes still active are evaluated, and the
            # loop ends when none is; elsewhere every box at every step (fixed shapes, no sync)
            compact = not exporting and _host_reads_are_free(B)
            prev, grad = evaluate(B, True)
            ious = prev
            active = torch.ones_like(prev, dtype=torch.bool)
            for t in range(self.refine_steps):
                wh = (B[:, 2:] - B[:, :2]).clamp(min=0.0)
                b = B + self.refine_lambda * grad * torch.cat([wh, wh], dim=1)
                b = self._sanitize(b, hw) if self.refine_clip else b
                B = torch.where(active[:, None], b, B)
                with_grad = t < self.refine_steps - 1
                if compact:
                    rows = nonzero_tuple(active)[0]
                    new, new_grad = evaluate(B, with_grad, rows)
                    new = prev.index_put((rows,), new)  # a stopped box: delta 0, masked below
                    if with_grad:
                        grad = torch.zeros_like(B).index_put((rows,), new_grad)
                else:
                    new, grad = evaluate(B, with_grad)
                ious = torch.where(active, new, ious)
                delta = new - prev
                stop = (delta.abs() < self.refine_omega1) | (delta < self.refine_omega2)
                prev = torch.where(active, new, prev)
                active = active & ~stop
                if compact and not active.any():
                    break
            B = B.detach()
        return list(B.split(counts)), list(ious.split(counts))

    def _refinement_pool(self) -> tuple[nn.Module, list[float]]:
        """(the IoU pooler's level pooler with ``spatial_scale`` 1, each level's scale): the
        refinement pools boxes already scaled to their level (:meth:`refine_boxes`)."""
        level_poolers = self.iou_pooler.level_poolers
        pool = copy.copy(level_poolers[0])  # same output size and alignment
        pool.spatial_scale = 1.0
        return pool, [float(p.spatial_scale) for p in level_poolers]

    def _iou_and_box_grad(self, pool, maps, rois, classes):
        """(predicted IoU, d IoU / d RoI coordinates) without autograd: the IoU head's explicit
        backward (:meth:`IoUHead.iou_and_input_grad`) chained with PrRoIPool's backward op."""
        pooled = pool(maps, rois)
        iou, grad = self.iou_head.iou_and_input_grad(pooled, classes)
        return iou.detach(), pool.rois_grad(grad, maps, rois, pooled)[:, 1:].detach()

    def _fixed_levels(self, boxes: Tensor) -> Tensor:
        pooler = self.iou_pooler
        if len(pooler.level_poolers) == 1:
            return torch.zeros(boxes.shape[0], dtype=torch.long, device=boxes.device)
        return assign_boxes_to_levels(
            [Boxes(boxes)],
            pooler.min_level,
            pooler.max_level,
            pooler.canonical_box_size,
            pooler.canonical_level,
        )
