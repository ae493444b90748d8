"""The compiled ops with everything torch needs to trace them, and nothing else.

Importing this module loads ``d2_boxunc._C`` (its ``TORCH_LIBRARY`` registrations make the ops
reachable as ``torch.ops.d2_boxunc.*``) and registers, in Python:

- fake (meta) kernels of every op, so they trace under FakeTensor, ``torch.compile`` and
  ``torch.export``;
- PrRoIPool's autograd formula (through ``_prroi_pool_backward``) and its autocast rule.

It imports torch and torchvision only (not detectron2), so that a program written by ``python -m
d2_boxunc.export`` loads with ``import d2_boxunc.ops; torch.export.load(path)`` alone. The user
API (argument checks, Python fallbacks) is ``d2_boxunc.layers`` and ``d2_boxunc.losses``.
"""

import json

import torch
import torchvision  # noqa: F401  (registers torchvision::nms, which exported R-CNNs call)

from d2_boxunc._extension import has_ops

__all__ = ["has_ops", "load_exported"]

EXPORT_META = "d2_boxunc.json"  # extra file in a .pt2 of ``python -m d2_boxunc.export``


def load_exported(path: str) -> tuple[torch.nn.Module, dict]:
    """``(program, meta)`` of a file written by ``python -m d2_boxunc.export``: the callable
    ``image -> (boxes, scores, classes, ...)`` and its description (``input_format``,
    ``outputs``, ``classes``, ``min_size`` / ``max_size``)."""
    extra = {EXPORT_META: ""}
    program = torch.export.load(path, extra_files=extra)
    return program.module(), json.loads(extra[EXPORT_META] or "{}")


# --- NMS family: the number of kept boxes depends on the data (an unbacked symbolic size); the
# ops are inference-only, no autograd formula (the wrappers detach their inputs).


def _dynamic_keep(boxes: torch.Tensor) -> tuple[torch.Tensor, int]:
    k = torch.library.get_ctx().new_dynamic_size()
    torch._check(k <= boxes.shape[0])
    return boxes.new_empty(k, dtype=torch.long), k


def _check_boxes(boxes: torch.Tensor) -> None:
    torch._check(boxes.dim() == 2 and boxes.shape[1] == 4, lambda: "boxes must have shape (N, 4)")


if has_ops():

    @torch.library.register_fake("d2_boxunc::soft_nms")
    def _soft_nms_fake(boxes, scores, idxs, sigma, iou_threshold, score_threshold, method):
        _check_boxes(boxes)
        keep, k = _dynamic_keep(boxes)
        return keep, scores.new_empty(k)

    @torch.library.register_fake("d2_boxunc::iou_guided_nms")
    def _iou_guided_nms_fake(boxes, cls_scores, keys, idxs, iou_threshold):
        _check_boxes(boxes)
        keep, k = _dynamic_keep(boxes)
        return keep, cls_scores.new_empty(k)

    @torch.library.register_fake("d2_boxunc::diou_nms")
    def _diou_nms_fake(boxes, scores, idxs, iou_threshold):
        _check_boxes(boxes)
        return _dynamic_keep(boxes)[0]

    @torch.library.register_fake("d2_boxunc::kl_nms")
    def _kl_nms_fake(
        boxes,
        scores,
        log_vars,
        idxs,
        iou_threshold,
        score_threshold,
        sigma_t,
        vote_iou_threshold,
        soft,
        soft_sigma,
    ):
        _check_boxes(boxes)
        keep, k = _dynamic_keep(boxes)
        return keep, boxes.new_empty(k, 4), scores.new_empty(k)

    @torch.library.register_fake("d2_boxunc::var_voting")
    def _var_voting_fake(kept_boxes, candidate_boxes, candidate_vars, sigma_t, iou_threshold):
        _check_boxes(kept_boxes)
        return torch.empty_like(kept_boxes, memory_format=torch.contiguous_format)


# --- PrRoIPool: fake kernels, autograd, autocast

if has_ops():

    @torch.library.register_fake("d2_boxunc::prroi_pool")
    def _prroi_pool_fake(input, rois, spatial_scale, pooled_height, pooled_width, aligned):
        torch._check(input.dim() == 4, lambda: "prroi_pool: input must be (N, C, H, W)")
        torch._check(
            rois.dim() == 2 and rois.shape[1] == 5, lambda: "prroi_pool: rois must be (K, 5)"
        )
        torch._check(input.dtype == rois.dtype, lambda: "prroi_pool: dtype mismatch")
        return input.new_empty((rois.shape[0], input.shape[1], pooled_height, pooled_width))

    @torch.library.register_fake("d2_boxunc::_prroi_pool_backward")
    def _prroi_pool_backward_fake(
        grad,
        input,
        rois,
        output,
        spatial_scale,
        pooled_height,
        pooled_width,
        aligned,
        input_grad=True,
        rois_grad=True,
    ):
        return (
            input.new_empty(input.shape if input_grad else (0,)),
            rois.new_empty(rois.shape if rois_grad else (0,)),
        )

    def _setup_context(ctx, inputs, output):
        input, rois, spatial_scale, pooled_height, pooled_width, aligned = inputs
        ctx.save_for_backward(input, rois, output)
        ctx.params = (spatial_scale, pooled_height, pooled_width, aligned)

    def _backward(ctx, grad):
        input, rois, output = ctx.saved_tensors
        # Only the gradients asked for are computed: box refinement (IoU-Net) needs d/d rois alone,
        # training on detached proposals d/d input alone.
        input_grad, rois_grad = ctx.needs_input_grad[:2]
        grad_input, grad_rois = torch.ops.d2_boxunc._prroi_pool_backward(
            grad, input, rois, output, *ctx.params, input_grad, rois_grad
        )
        return (
            grad_input if input_grad else None,
            grad_rois if rois_grad else None,
            None,
            None,
            None,
            None,
        )

    torch.library.register_autograd(
        "d2_boxunc::prroi_pool", _backward, setup_context=_setup_context
    )

    def _no_double_backward(ctx, grad_input, grad_rois):
        raise RuntimeError("prroi_pool does not support double backward (second derivatives)")

    torch.library.register_autograd(
        "d2_boxunc::_prroi_pool_backward",
        _no_double_backward,
        setup_context=lambda ctx, inputs, output: None,
    )

    for _device in ("cpu", "cuda"):
        torch.library.register_autocast("d2_boxunc::prroi_pool", _device, torch.float32)


# --- aLRP band ops: output sizes follow from the number of band edges

if has_ops():

    @torch.library.register_fake("d2_boxunc::alrp_band_stats")
    def _alrp_band_stats_fake(values, labels, edges):
        torch._check(values.dim() == 1 and labels.shape == values.shape)
        n = edges.shape[0]
        return values.new_empty(n + 2, dtype=torch.float64), values.new_empty(
            n + 1, dtype=torch.float64
        )

    @torch.library.register_fake("d2_boxunc::alrp_band_grad")
    def _alrp_band_grad_fake(values, labels, edges, offset, slope):
        torch._check(values.dim() == 1 and labels.shape == values.shape)
        return torch.empty_like(values)
