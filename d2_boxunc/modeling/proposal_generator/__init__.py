"""Proposal generators (LazyConfig ``model.proposal_generator._target_``)."""

from d2_boxunc.modeling.proposal_generator.alrp_rpn import ALRPRPN  # noqa: F401
from d2_boxunc.modeling.proposal_generator.iou_loss_rpn import IoULossRPN  # noqa: F401
