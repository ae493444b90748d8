"""R-CNN meta-architecture whose post-processing also rescales per-box uncertainty fields."""

from __future__ import annotations

from detectron2.modeling import GeneralizedRCNN
from detectron2.modeling.postprocessing import detector_postprocess

from d2_boxunc.modeling.kl_head import scale_boxes_std

__all__ = ["BoxUncRCNN", "postprocess_rcnn"]


class BoxUncRCNN(GeneralizedRCNN):
    """``GeneralizedRCNN`` for heads that output ``pred_boxes_std`` (per-coordinate std in pixels).

    detectron2's ``detector_postprocess`` rescales ``pred_boxes`` from the network's input size to
    the original image size but leaves other fields alone; this class scales ``pred_boxes_std`` by
    the same factors so that it stays in the pixels of the returned boxes. Everything else is
    ``GeneralizedRCNN``.
    """

    def inference(self, batched_inputs, detected_instances=None, do_postprocess: bool = True):
        results = super().inference(batched_inputs, detected_instances, do_postprocess=False)
        return self.postprocess(results, batched_inputs) if do_postprocess else results

    def postprocess(self, results, batched_inputs) -> list[dict]:
        """:func:`postprocess_rcnn`."""
        return postprocess_rcnn(results, batched_inputs)


def postprocess_rcnn(results, batched_inputs) -> list[dict]:
    """R-CNN ``results`` (Instances in the network's input size) rescaled to each input's original
    size, as ``[{"instances": ...}]``: ``GeneralizedRCNN``'s post-processing, which also scales
    ``pred_boxes_std`` where present."""
    processed = []
    for r, inputs in zip(results, batched_inputs):
        height = inputs.get("height", r.image_size[0])
        width = inputs.get("width", r.image_size[1])
        if r.has("pred_boxes_std"):
            r.pred_boxes_std = scale_boxes_std(r.pred_boxes_std, r.image_size, (height, width))
        processed.append({"instances": detector_postprocess(r, height, width)})
    return processed
