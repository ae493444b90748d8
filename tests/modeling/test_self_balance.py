"""SelfBalance, the aLRP self-balance module shared by BoxUncRetinaNet, ALRPRPN and
ALRPFastRCNNOutputLayers: the update rule, a fixed weight, the period derived from the dataset,
and the all-reduce across ranks."""

import os

import pytest
import torch

from d2_boxunc.modeling.self_balance import SelfBalance


def test_update_rule():
    sb = SelfBalance(period=3)
    assert float(sb.weight) == 50.0 and sb.weight.dtype == torch.float64
    for i, (c, l_, pos) in enumerate(((0.9, 0.2, True), (9.0, 9.0, False), (0.8, 0.3, True))):
        sb.step(torch.tensor(c), torch.tensor(l_), pos)
        if i < 2:
            assert float(sb.weight) == 50.0  # only at the end of the period
    assert float(sb.weight) == pytest.approx((1.7 + 0.5) / 0.5)  # the no-positive one ignored
    assert float(sb.cls_sum) == 0 and float(sb.loc_sum) == 0 and int(sb.num_iter) == 0
    assert set(sb.state_dict()) == {"weight", "cls_sum", "loc_sum", "num_iter"}


def test_fixed_weight_and_missing_period():
    fixed = SelfBalance(init_weight=7.0, update=False)  # no period needed
    for _ in range(5):
        fixed.step(torch.tensor(0.5), torch.tensor(0.1), True)
    assert float(fixed.weight) == 7.0 and int(fixed.num_iter) == 0
    with pytest.raises(ValueError, match="rpn: self-balance needs sb_period"):
        SelfBalance(period=0, name="rpn")


def test_period_from_dataset():
    sb = SelfBalance(period=0, dataset="boxunc_synth_train", total_batch_size=4)
    sb.step(torch.tensor(0.5), torch.tensor(0.1), True)
    assert sb.period == 75  # 300 synthetic training images / batch 4


def _sb_worker(rank, world, port, values, out):
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        sb = SelfBalance(period=len(values[rank]))
        for c, l_, pos in values[rank]:
            sb.step(torch.tensor(c), torch.tensor(l_), pos)
        with open(os.path.join(out, f"rank{rank}"), "w") as f:
            f.write(repr(float(sb.weight)))
    finally:
        dist.destroy_process_group()


def test_self_balance_is_all_reduced_across_ranks(tmp_path):
    """Two ranks with different losses end with the same weight: the per-iteration means over
    the ranks that had positives."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    values = [[(0.8, 0.2, True), (0.6, 0.1, True)], [(0.4, 0.4, True), (9.0, 9.0, False)]]
    mp.spawn(_sb_worker, args=(2, port, values, str(tmp_path)), nprocs=2, join=True)
    out = [float((tmp_path / f"rank{r}").read_text()) for r in range(2)]
    cls_sum = (0.8 + 0.4) / 2 + 0.6  # iteration 2: only rank 0 had positives
    loc_sum = (0.2 + 0.4) / 2 + 0.1
    assert out[0] == out[1] == pytest.approx((cls_sum + loc_sum) / loc_sum)
