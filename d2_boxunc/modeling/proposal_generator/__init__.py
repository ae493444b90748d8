"""Proposal generators (registered in detectron2's PROPOSAL_GENERATOR_REGISTRY on import)."""

from d2_boxunc.modeling.proposal_generator.iou_loss_rpn import IoULossRPN  # noqa: F401
