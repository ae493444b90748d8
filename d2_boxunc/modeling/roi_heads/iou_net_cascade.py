"""IoU-Net on Cascade R-CNN (Jiang et al., ECCV 2018, the paper's Cascade R-CNN rows): detectron2's
``CascadeROIHeads`` with IoU-Net's IoU branch, IoU-guided NMS and refinement on its output.

Training: the cascade's three stages train as in detectron2 (their losses carry a ``_stage{k}``
suffix) and the IoU branch adds ``loss_iou`` on PrRoIPool features of the jittered ground-truth
boxes, exactly as :class:`~d2_boxunc.modeling.roi_heads.IoUNetROIHeads`.

Inference: the class scores averaged over the stages and the last stage's (class-agnostic) boxes,
as detectron2's cascade, then IoU-Net's stages 2-6 (docs/design.md#iou-net-inference) with the
last stage's ``test_score_thresh``, ``test_nms_thresh`` and ``test_topk_per_image``;
``test_iou_head=False`` gives detectron2's cascade inference. Every IoU-Net test knob of
``IoUNetROIHeads`` applies. LazyConfig only (not in the ROI-heads registry).
"""

from __future__ import annotations

from detectron2.modeling.roi_heads import CascadeROIHeads
from detectron2.structures import ImageList, Instances
from torch import Tensor

from d2_boxunc.modeling.roi_heads.iou_net_roi_heads import IoUNetROIHeads

__all__ = ["IoUNetCascadeROIHeads"]


class IoUNetCascadeROIHeads(IoUNetROIHeads, CascadeROIHeads):
    """``CascadeROIHeads`` plus IoU-Net's IoU branch.

    Constructor: ``CascadeROIHeads``'s arguments (``box_heads``, ``box_predictors``,
    ``proposal_matchers``, ...) plus ``IoUNetROIHeads``'s IoU-branch arguments (``iou_pooler``,
    ``iou_head``, ``iou_roi_generator``, ``test_*``, ``refine*``, ``final_score``).
    """

    @property
    def _test_predictor(self):
        return self.box_predictor[-1]

    def forward(
        self,
        images: ImageList,
        features: dict[str, Tensor],
        proposals: list[Instances],
        targets: list[Instances] | None = None,
    ):
        if not self.training:
            return CascadeROIHeads.forward(self, images, features, proposals, targets)
        if not targets:
            raise ValueError("IoUNetCascadeROIHeads: 'targets' are required during training")
        del images
        proposals = self.label_and_sample_proposals(proposals, targets)
        losses = CascadeROIHeads._forward_box(self, features, proposals, targets)
        losses.update(self._forward_iou_train(features, targets))
        losses.update(self._forward_mask(features, proposals))
        losses.update(self._forward_keypoint(features, proposals))
        return proposals, losses

    def _forward_box(self, features, proposals, targets=None):
        if self.training or not self.test_iou_head:
            return CascadeROIHeads._forward_box(self, features, proposals, targets)
        box_features = [features[f] for f in self.box_in_features]
        image_sizes = [x.image_size for x in proposals]
        head_outputs = []
        prev_boxes = None
        for k in range(self.num_cascade_stages):
            if k > 0:
                proposals = self._create_proposals_from_boxes(prev_boxes, image_sizes)
            predictions = self._run_stage(box_features, proposals, k)
            prev_boxes = self.box_predictor[k].predict_boxes(predictions, proposals)
            head_outputs.append((self.box_predictor[k], predictions, proposals))
        scores_per_stage = [p.predict_probs(out, props) for p, out, props in head_outputs]
        scores = [
            sum(list(per_image)) * (1.0 / self.num_cascade_stages)
            for per_image in zip(*scores_per_stage)
        ]
        predictor, predictions, proposals = head_outputs[-1]
        boxes = predictor.predict_boxes(predictions, proposals)
        return self.iou_net_inference(
            [features[f] for f in self.iou_in_features], boxes, scores, image_sizes
        )
