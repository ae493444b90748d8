"""aLRP Loss self-balance (docs/design.md#self-balance), shared by every head trained with aLRP
Loss: ``BoxUncRetinaNet``, ``ALRPRPN`` and ``ALRPFastRCNNOutputLayers``.

The localisation component of aLRP Loss is multiplied by ``w_SB``. It starts at ``init_weight``
(50) and, every ``period`` iterations (one epoch of the training set at the total batch unless
given), becomes ``(mean L_cls + mean L_loc) / mean L_loc`` over that period, the unweighted
components of each iteration. Each iteration's values are averaged over the ranks that had
positives (an all-reduce every rank joins every iteration), so every GPU holds the same sums and
weight. An iteration without positives on any rank adds nothing to the sums but counts towards the
period. Weight, sums and counter are buffers (checkpointed, restored by ``--resume``); the period
follows the config, not the checkpoint.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.distributed as dist
from detectron2.utils import comm
from torch import Tensor, nn

__all__ = ["SelfBalance", "epoch_length"]

logger = logging.getLogger(__name__)


def epoch_length(dataset_names: str | list[str] | tuple[str, ...], total_batch_size: int) -> int:
    """Iterations in one epoch: ``ceil(#training images / total batch)`` (images without
    annotations are dropped, as detectron2's training loader does). COCO train2017 at batch 32:
    ``ceil(117266 / 32) = 3665``, the reference's hard-coded period."""
    from detectron2.data import get_detection_dataset_dicts

    if isinstance(dataset_names, str):
        dataset_names = [dataset_names]
    num_images = len(get_detection_dataset_dicts(list(dataset_names), filter_empty=True))
    if int(total_batch_size) <= 0:
        raise ValueError(f"epoch_length: total_batch_size must be > 0, got {total_batch_size}")
    return max(1, math.ceil(num_images / int(total_batch_size)))


class SelfBalance(nn.Module):
    """The self-balance weight ``w_SB`` of one aLRP-trained head and its running sums.

    Buffers: ``weight`` (float64), ``cls_sum``, ``loc_sum`` (float64 sums of the period's
    per-iteration means), ``num_iter`` (iterations since the last update).
    """

    def __init__(
        self,
        init_weight: float = 50.0,
        update: bool = True,
        period: int = 0,
        dataset: str | list[str] | None = None,
        total_batch_size: int | None = None,
        name: str = "aLRP",
    ):
        """
        Args:
            init_weight: initial ``w_SB``. Default: 50 (the paper's).
            update: update the weight once per period; False keeps it fixed. Default: True.
            period: iterations between updates; 0 derives one epoch from ``dataset`` and
                ``total_batch_size`` at the first :meth:`step`. Default: 0.
            dataset, total_batch_size: training dataset name(s) and images per iteration over all
                GPUs, used when ``period == 0``.
            name: names this head in the log and in errors. Default: "aLRP".
        """
        super().__init__()
        if update and int(period) <= 0 and (dataset is None or not total_batch_size):
            raise ValueError(
                f"{name}: self-balance needs sb_period > 0, or sb_dataset and "
                "sb_total_batch_size to derive one epoch"
            )
        self.update = bool(update)
        self.period = int(period)
        self.dataset = dataset
        self.total_batch_size = total_batch_size
        self.name = name
        f64 = dict(dtype=torch.float64)
        self.register_buffer("weight", torch.tensor(float(init_weight), **f64))
        self.register_buffer("cls_sum", torch.tensor(0.0, **f64))
        self.register_buffer("loc_sum", torch.tensor(0.0, **f64))
        self.register_buffer("num_iter", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, update={self.update}, period={self.period}"

    @torch.no_grad()
    def step(self, loss_cls: Tensor, loss_loc: Tensor, has_pos: bool) -> None:
        """Accumulate one training iteration's unweighted components (scalars, any device);
        update ``weight`` at the end of the period. Every rank must call this every iteration
        (it all-reduces), with ``has_pos=False`` when it had no positive."""
        if not self.update:
            return
        if self.period <= 0:
            self.period = epoch_length(self.dataset, self.total_batch_size)
            logger.info(f"{self.name} self-balance: updating w_SB every {self.period} iterations")
        flag = torch.tensor(float(has_pos), dtype=torch.float64, device=loss_cls.device)
        vals = torch.stack([loss_cls.double().reshape(()), loss_loc.double().reshape(()), flag])
        vals = vals * float(has_pos)  # an iteration without positives adds nothing
        if comm.get_world_size() > 1:
            dist.all_reduce(vals)
        if vals[2] > 0:  # mean over the ranks that had positives
            self.cls_sum += vals[0] / vals[2]
            self.loc_sum += vals[1] / vals[2]
        self.num_iter += 1
        if self.num_iter >= self.period:
            if self.loc_sum > 0:
                self.weight.copy_((self.cls_sum + self.loc_sum) / self.loc_sum)
            self.cls_sum.zero_()
            self.loc_sum.zero_()
            self.num_iter.zero_()

    def alrp_losses(
        self,
        logits: Tensor,
        labels: Tensor,
        loc_err: Tensor,
        regression: Tensor,
        log_prefix: str,
        **ranking,
    ) -> tuple[Tensor, Tensor]:
        """aLRP Loss of one ranking with this self-balance: ``(L_cls, w_SB * L_loc)``.

        ``loc_err`` holds the positives' localisation errors in the order ``alrp_cls`` finds
        them in ``labels``; ``regression`` is the head's regression output, kept in the graph at
        0 when there is no positive (DDP).  ``ranking`` goes to ``alrp_cls`` (delta, eps, impl,
        max_loc_err).  Steps the self-balance in training and logs ``<log_prefix>/...``."""
        from detectron2.utils.events import get_event_storage

        from d2_boxunc.losses import alrp_cls, alrp_loc

        num_pos = loc_err.numel()
        loss_cls, rank, order = alrp_cls(logits, labels, loc_err, **ranking)
        if num_pos == 0:
            loss_loc = regression.sum() * 0
        else:
            loss_loc = alrp_loc(loc_err, rank, order)
        if self.training:
            self.step(loss_cls.detach(), loss_loc.detach(), num_pos > 0)
        try:
            storage = get_event_storage()
        except AssertionError:  # called outside a trainer (tests, notebooks)
            storage = None
        if storage is not None:
            storage.put_scalar(f"{log_prefix}/cls", float(loss_cls.detach()))
            storage.put_scalar(f"{log_prefix}/loc", float(loss_loc.detach()))
            if num_pos:
                storage.put_scalar(f"{log_prefix}/mean_loc_error", float(loc_err.detach().mean()))
            storage.put_scalar(f"{log_prefix}/sb_weight", float(self.weight))
        return loss_cls, self.weight.to(loss_loc.dtype) * loss_loc
