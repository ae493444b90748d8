"""Export a trained model to one ``torch.export`` file that runs without detectron2.

    python -m d2_boxunc.export --config-file X.py --checkpoint model_final.pth \\
        --output model.pt2 [--synthetic] [key=value ...]

Load it anywhere with torch and the compiled ops of this package (``d2_boxunc.ops`` imports
torch only, never detectron2)::

    import d2_boxunc.ops
    program, meta = d2_boxunc.ops.load_exported("model.pt2")
    # or: import torch, d2_boxunc.ops; program = torch.export.load("model.pt2").module()
    boxes, scores, classes, *extra = program(image)

``image`` is a float32 ``(3, H, W)`` CPU tensor of 0-255 pixel values in the config's channel
order (``meta["input_format"]``: BGR for detectron2's configs), already resized as the config's
test augmentation resizes (for example a short side of 800); ``H`` and ``W`` may be anything
from ``MIN_SIZE`` to ``MAX_SIZE`` (dynamic shapes). The outputs, in the pixels of ``image``:
``boxes`` (K, 4) XYXY, ``scores`` (K,), ``classes`` (K,) int64, then per method ``bbox_std``
(K, 4): the sigma of each coordinate (KL-Loss), or ``pred_iou`` (K,): the predicted IoU
(IoU-Net); ``meta["outputs"]`` names them, ``meta["classes"]`` the classes. They equal the
eager model's ``model([{"image": image}])`` (docs/design.md#export). Mask heads are not
exported (boxes only).

Mistakes (missing config or checkpoint, a checkpoint that does not fit the config) are one line,
``export: error: ...``, exit code 2, as for ``python -m d2_boxunc.predict``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PROG = "export"
# image sizes the program accepts: the coarsest FPN level (stride 128 for RetinaNet's P7) must be
# larger than 1x1, or the trace would differ (e.g. GroupNorm on one value)
MIN_SIZE, MAX_SIZE = 160, 8192
EXTRA_FIELDS = {"pred_boxes_std": "bbox_std", "pred_ious": "pred_iou"}  # Instances -> output


class ExportableDetector(nn.Module):
    """A detectron2 model as ``image (3, H, W) -> (boxes, scores, classes, *extra)`` (see the
    module docstring); ``extra`` names Instances fields among :data:`EXTRA_FIELDS`.

    It runs the model's own modules (normalisation, backbone, proposals, heads) on one image and
    detectron2's post-processing at scale 1 (clip, drop empty boxes); it only skips
    ``ImageList.from_tensors``, whose padding goes through tensors and would fix the image size.
    """

    def __init__(self, model: nn.Module, extra: tuple[str, ...] = ()):
        super().__init__()
        self.model = model.eval()
        self.extra = tuple(extra)

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        from detectron2.structures import ImageList

        m = self.model
        h, w = image.shape[-2:]
        x = (image.to(m.pixel_mean.device) - m.pixel_mean) / m.pixel_std
        d = m.backbone.size_divisibility
        if d > 1:
            x = F.pad(x, (0, (w + d - 1) // d * d - w, 0, (h + d - 1) // d * d - h))
        images = ImageList(x[None], [(h, w)])
        features = m.backbone(images.tensor)
        if hasattr(m, "roi_heads"):  # R-CNN
            proposals, _ = m.proposal_generator(images, features, None)
            results, _ = m.roi_heads(images, features, proposals, None)
        else:  # dense detector (RetinaNet)
            features = [features[f] for f in m.head_in_features]
            results = m.forward_inference(images, features, m.head(features))
        r = results[0]
        r.pred_boxes.clip((h, w))
        keep = r.pred_boxes.nonempty()
        out = [r.pred_boxes.tensor[keep], r.scores[keep], r.pred_classes[keep]]
        for field in self.extra:
            value = getattr(r, field)[keep]
            out.append(value[:, 0] if value.dim() == 2 and value.shape[1] == 1 else value)
        return tuple(out)


def extra_fields(model: nn.Module, image: Tensor) -> tuple[str, ...]:
    """The fields of :data:`EXTRA_FIELDS` that ``model`` outputs (one eager run on ``image``)."""
    with torch.no_grad():
        r = model([{"image": image}])[0]["instances"]
    return tuple(f for f in EXTRA_FIELDS if r.has(f))


# --- detectron2 functions that branch on tensor values, and their branch-free equivalents -------
# ``torch.export`` cannot trace ``if not valid_mask.all():`` (a data-dependent Python branch). The
# two detectron2 inference functions that contain one (the RPN's proposal selection, Fast R-CNN's
# per-image NMS) are replaced while exporting by these, which always filter with the mask: the
# same result when every box is finite (they drop non-finite boxes either way).


def _top_rpn_proposals(
    proposals: list[Tensor],
    pred_objectness_logits: list[Tensor],
    image_sizes: list[tuple[int, int]],
    nms_thresh: float,
    pre_nms_topk: int,
    post_nms_topk: int,
    min_box_size: float,
    training: bool,
):
    """Branch-free ``detectron2...proposal_utils.find_top_rpn_proposals`` (inference)."""
    from detectron2.layers import batched_nms
    from detectron2.structures import Boxes, Instances

    boxes, scores, levels = [], [], []
    for level, (boxes_i, logits_i) in enumerate(zip(proposals, pred_objectness_logits)):
        k = torch.sym_min(pre_nms_topk, logits_i.shape[1])
        top_scores, top_idx = logits_i.topk(k, dim=1)
        batch = torch.arange(boxes_i.shape[0], device=boxes_i.device)[:, None]
        boxes.append(boxes_i[batch, top_idx])
        scores.append(top_scores)
        levels.append(torch.full((k,), level, dtype=torch.int64, device=boxes_i.device))
    boxes, scores, levels = torch.cat(boxes, 1), torch.cat(scores, 1), torch.cat(levels)
    results = []
    for n, image_size in enumerate(image_sizes):
        b, s, lvl = boxes[n], scores[n], levels
        valid = torch.isfinite(b).all(dim=1) & torch.isfinite(s)
        b, s, lvl = Boxes(b[valid]), s[valid], lvl[valid]
        b.clip(image_size)
        keep = b.nonempty(threshold=min_box_size)
        b, s, lvl = b[keep], s[keep], lvl[keep]
        keep = batched_nms(b.tensor, s, lvl, nms_thresh)[:post_nms_topk]
        r = Instances(image_size)
        r.proposal_boxes = b[keep]
        r.objectness_logits = s[keep]
        results.append(r)
    return results


def _fast_rcnn_inference_single_image(
    boxes: Tensor,
    scores: Tensor,
    image_shape: tuple[int, int],
    score_thresh: float,
    nms_thresh: float,
    topk_per_image: int,
):
    """Branch-free ``detectron2...fast_rcnn.fast_rcnn_inference_single_image``."""
    from detectron2.layers import batched_nms
    from detectron2.structures import Boxes, Instances

    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    boxes, scores = boxes[valid], scores[valid][:, :-1]
    num_reg = boxes.shape[1] // 4
    b = Boxes(boxes.reshape(-1, 4))
    b.clip(image_shape)
    boxes = b.tensor.view(-1, num_reg, 4)
    mask = scores > score_thresh
    rows_classes = mask.nonzero()
    boxes = boxes[rows_classes[:, 0], 0] if num_reg == 1 else boxes[mask]
    scores = scores[mask]
    keep = batched_nms(boxes, scores, rows_classes[:, 1], nms_thresh)
    if topk_per_image >= 0:
        keep = keep[:topk_per_image]
    result = Instances(image_shape)
    result.pred_boxes = Boxes(boxes[keep])
    result.scores = scores[keep]
    result.pred_classes = rows_classes[keep, 1]
    return result, rows_classes[keep, 0]


def _boxes_init(self, tensor: Tensor) -> None:
    """``Boxes.__init__`` for an (N, 4) tensor, without its ``numel() == 0`` branch (a reshape
    that changes nothing for (N, 4), but a guard on the data-dependent N)."""
    torch._check(tensor.dim() == 2 and tensor.shape[-1] == 4)
    self.tensor = tensor.to(torch.float32)


def _boxes_clip(self, box_size: tuple[int, int]) -> None:
    """``Boxes.clip`` with its finiteness assert as a runtime check in the program instead of a
    Python ``assert`` on a tensor."""
    torch._assert_async(torch.isfinite(self.tensor).all(), "Box tensor contains infinite or NaN!")
    h, w = box_size
    x1, y1, x2, y2 = self.tensor.unbind(dim=-1)
    x1, x2 = x1.clamp(min=0, max=w), x2.clamp(min=0, max=w)
    y1, y2 = y1.clamp(min=0, max=h), y2.clamp(min=0, max=h)
    self.tensor = torch.stack((x1, y1, x2, y2), dim=-1)


def _batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """``torchvision.ops.batched_nms`` without its branches on the number of boxes (one NMS on
    boxes offset per class, torchvision's own strategy for up to 1000 boxes on the CPU)."""
    from torchvision.ops import nms

    top = torch.cat([boxes.reshape(-1), boxes.new_zeros(1)]).max()  # 0 boxes: no error
    return nms(boxes + (idxs.to(boxes) * (top + 1))[:, None], scores, iou_threshold)


def _instances_set(self, name: str, value) -> None:
    """``Instances.set`` without its length check: ``len()`` must be a Python int, and the number
    of detections is a symbolic size while exporting."""
    self._fields[name] = value


def _pooler_format(box_lists) -> Tensor:
    """``convert_boxes_to_pooler_format``: (M, 5) rows ``(image index, x1, y1, x2, y2)``, with
    the image index from each list's symbolic length rather than a tensor of Python ints."""
    return torch.cat(
        [
            torch.cat([torch.full_like(b.tensor[:, :1], i), b.tensor], dim=1)
            for i, b in enumerate(box_lists)
        ]
    )


def _counts(proposals) -> list:
    return [p.proposal_boxes.tensor.shape[0] for p in proposals]  # len(p) must be an int


def _predict_boxes(self, predictions, proposals):
    """``FastRCNNOutputLayers.predict_boxes`` with symbolic per-image counts."""
    boxes = torch.cat([p.proposal_boxes.tensor for p in proposals])
    return self.box2box_transform.apply_deltas(predictions[1], boxes).split(_counts(proposals))


def _predict_probs(self, predictions, proposals):
    """``FastRCNNOutputLayers.predict_probs`` with symbolic per-image counts."""
    scores = predictions[0]
    probs = scores.sigmoid() if self.use_sigmoid_ce else F.softmax(scores, dim=-1)
    return probs.split(_counts(proposals))


def _nms_fake(dets: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Fake kernel of ``torchvision::nms`` with 0 <= kept <= N. torchvision's own declares the
    count with the old default minimum of 2, which the program would then assert at run time
    (an image with one detection would fail)."""
    from d2_boxunc.ops import _dynamic_keep

    return _dynamic_keep(dets)[0]


@contextlib.contextmanager
def export_patches():
    """Inside the block, detectron2's inference uses the branch-free functions above."""
    from detectron2.modeling import poolers
    from detectron2.modeling.proposal_generator import rpn
    from detectron2.modeling.roi_heads import fast_rcnn
    from detectron2.structures import Boxes, Instances
    from torchvision.ops import boxes as box_ops

    from d2_boxunc.modeling.roi_heads import kl_fast_rcnn

    patches = [
        (Boxes, "__init__", _boxes_init),
        (Boxes, "clip", _boxes_clip),
        (box_ops, "batched_nms", _batched_nms),
        (Instances, "set", _instances_set),
        (poolers, "convert_boxes_to_pooler_format", _pooler_format),
        (rpn, "find_top_rpn_proposals", _top_rpn_proposals),
        (fast_rcnn, "fast_rcnn_inference_single_image", _fast_rcnn_inference_single_image),
        (fast_rcnn.FastRCNNOutputLayers, "predict_boxes", _predict_boxes),
        (fast_rcnn.FastRCNNOutputLayers, "predict_probs", _predict_probs),
        (kl_fast_rcnn, "fast_rcnn_inference_single_image", _fast_rcnn_inference_single_image),
    ]
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    lib = torch.library.Library("torchvision", "FRAGMENT")  # destroyed: torchvision's fake again
    try:
        torch.library.register_fake("torchvision::nms", _nms_fake, lib=lib)
        for module, name, fn in patches:
            setattr(module, name, fn)
        yield
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)
        lib._destroy()


def export_model(model: nn.Module, example: Tensor) -> tuple[torch.export.ExportedProgram, tuple]:
    """``(program, extra field names)``: ``model`` (eval mode) exported on ``example``, a
    ``(3, H, W)`` image, with dynamic ``H`` and ``W``."""
    extra = extra_fields(model, example)
    wrapper = ExportableDetector(model, extra)
    dims = {1: torch.export.Dim("height", min=MIN_SIZE, max=MAX_SIZE)}
    dims[2] = torch.export.Dim("width", min=MIN_SIZE, max=MAX_SIZE)
    with export_patches(), torch.no_grad():
        program = torch.export.export(wrapper, (example,), dynamic_shapes=(dims,), strict=False)
    return program, extra


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m d2_boxunc.export",
        description="Export a trained model with torch.export to a .pt2 file that runs with "
        "torch and d2_boxunc.ops alone (no detectron2).",
    )
    p.add_argument("--config-file", required=True, metavar="FILE")
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="e.g. model_final.pth")
    p.add_argument("--output", required=True, metavar="FILE", help="e.g. model.pt2")
    p.add_argument(
        "--synthetic",
        action="store_true",
        help="apply the CPU switch (for checkpoints trained with train_net.py --synthetic)",
    )
    p.add_argument("opts", nargs="*", metavar="key=value", help="config overrides")
    return p


def main(argv: list[str] | None = None) -> int:
    from d2_boxunc.ops import EXPORT_META
    from d2_boxunc.predict import (
        PredictError,
        check_model_files,
        dataset_metadata,
        input_format,
        load_checked_model,
    )

    args = get_parser().parse_args(argv)
    try:
        check_model_files(args)
        if os.path.isdir(args.output):
            raise PredictError(f"--output {args.output} is a folder, not a file")
        model, cfg = load_checked_model(args, "cpu", [o for o in args.opts if o != "--"])
    except PredictError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    if getattr(getattr(model, "roi_heads", None), "mask_on", False):
        print(f"{PROG}: note: the mask head is not exported (boxes only)", file=sys.stderr)
    example = torch.rand(3, 320, 416, generator=torch.Generator().manual_seed(0)) * 255
    try:
        program, extra = export_model(model, example)
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        print(
            f"{PROG}: error: cannot export this model: {type(e).__name__}: {first}", file=sys.stderr
        )
        return 1
    meta = {
        "input_format": input_format(cfg),
        "outputs": ["boxes", "scores", "classes"] + [EXTRA_FIELDS[f] for f in extra],
        "classes": list(dataset_metadata(cfg).get("thing_classes", None) or []),
        "min_size": MIN_SIZE,
        "max_size": MAX_SIZE,
    }
    torch.export.save(program, args.output, extra_files={EXPORT_META: json.dumps(meta)})
    print(f"exported to {args.output}: outputs {', '.join(meta['outputs'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
