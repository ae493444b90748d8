"""aLRP / AP Loss speed (docs/design.md#fast-exact-ranking), in one run.

1. Loss forward + backward, ``impl="sorted"`` (bucketed sort-and-prefix-sum) against
   ``impl="loop"`` (the reference's loop over positives), at RetinaNet sizes: logits of
   ``anchors x classes`` (default 100k x 80 = 8M), 50 and 500 positives, every logit near the
   initial prior (-4.6 +- 0.5) as early in training, where every negative is "relevant".
   Target: sorted >= 20x faster than the loop.
2. Training iteration (forward + backward + AdamW step on one fixed batch of 4 synthetic images)
   of the synthetic-switch RetinaNet (GN ResNet-18 FPN, ~256 px) with aLRP Loss against the same
   model with focal loss. Target: aLRP <= 1.2x focal.

Writes benchmarks/results/alrp.json.

    python benchmarks/bench_alrp.py [--anchors 100000] [--classes 80] [--device cpu|cuda]
                                    [--threads 1] [--iters 20] [--output FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
from tabulate import tabulate

import d2_boxunc.data  # noqa: F401  (registers the synthetic datasets)
from d2_boxunc.losses import alrp_cls, alrp_loc, ap_loss

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALRP = "configs/aLRPLoss/alrp_retinanet_R_50_FPN_100ep_512.py"


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_case(num_logits: int, num_pos: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = (-4.6 + 0.5 * torch.randn(num_logits, generator=g)).to(device)
    y = torch.zeros(num_logits, dtype=torch.int8)
    y[torch.randperm(num_logits, generator=g)[:num_pos]] = 1
    err = (torch.rand(num_pos, generator=g) * 1.5).to(device)
    return s, y.to(device), err


def time_loss(kind: str, impl: str, s, y, err, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        x = s.clone().requires_grad_()
        e = err.clone().requires_grad_()
        _sync(s.device)
        t0 = time.perf_counter()
        if kind == "aLRP":
            loss, rank, order = alrp_cls(x, y, e, impl=impl)
            loss = loss + 50 * alrp_loc(e, rank, order)
        else:
            loss = ap_loss(x, y, impl=impl)
        loss.backward()
        _sync(s.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def training_iteration_times(iters: int) -> dict:
    from detectron2.config import instantiate
    from detectron2.data import DatasetCatalog
    from detectron2.utils.events import EventStorage

    from d2_boxunc.config.cli import load_config

    cfg = load_config(os.path.join(ROOT, ALRP), [], synthetic=True)
    cfg.dataloader.train.mapper._target_ = "detectron2.data.DatasetMapper"
    mapper = instantiate(cfg.dataloader.train.mapper)
    dicts = DatasetCatalog.get(cfg.dataloader.train.dataset.names)[:4]
    torch.manual_seed(0)
    batch = [mapper(dict(d)) for d in dicts]
    models, opts = {}, {}
    for loss in ("focal", "alrp"):
        cfg.model.cls_loss_type = loss
        cfg.model.sb_period = 1000
        torch.manual_seed(0)
        models[loss] = instantiate(cfg.model).train()
        opts[loss] = torch.optim.AdamW(models[loss].parameters(), lr=1e-4)
    times = {k: [] for k in models}
    with EventStorage():
        for i in range(iters + 3):
            for loss, m in models.items():  # interleaved: machine drift hits both alike
                t0 = time.perf_counter()
                total = sum(m(batch).values())
                opts[loss].zero_grad()
                total.backward()
                opts[loss].step()
                if i >= 3:
                    times[loss].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--anchors", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--positives", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (contended cores: 1 is much faster)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the sorted path")
    parser.add_argument("--loop-repeats", type=int, default=1)
    parser.add_argument("--iters", type=int, default=20, help="timed training iterations")
    parser.add_argument(
        "--output",
        default=os.path.join(ROOT, "benchmarks", "results", "alrp.json"),
        help="where to write the results (JSON)",
    )
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    num_logits = args.anchors * args.classes
    rows, results = [], []
    for p in args.positives:
        s, y, err = make_case(num_logits, p, device)
        for kind in ("aLRP", "AP"):
            time_loss(kind, "sorted", s, y, err, 1)  # warm-up
            t_sorted = time_loss(kind, "sorted", s, y, err, args.repeats)
            t_loop = time_loss(kind, "loop", s, y, err, args.loop_repeats)
            rows.append(
                [
                    kind,
                    f"{args.anchors:,} x {args.classes}",
                    p,
                    f"{t_loop * 1e3:.0f}",
                    f"{t_sorted * 1e3:.0f}",
                    f"{t_loop / t_sorted:.1f}x",
                ]
            )
            results.append(
                {
                    "loss": kind,
                    "logits": num_logits,
                    "positives": p,
                    "loop_s": t_loop,
                    "sorted_s": t_sorted,
                    "speedup": t_loop / t_sorted,
                }
            )
    print(
        f"\nLoss forward + backward on {device} ({torch.get_num_threads()} thread(s)), "
        f"logits ~ N(-4.6, 0.5^2), median of {args.repeats} (loop: {args.loop_repeats}):"
    )
    print(
        tabulate(
            rows,
            headers=["loss", "anchors x classes", "|P|", "loop ms", "sorted ms", "speed-up"],
            tablefmt="github",
        )
    )

    training = None
    if not args.skip_training:
        t = training_iteration_times(args.iters)
        training = {"focal_s": t["focal"], "alrp_s": t["alrp"], "ratio": t["alrp"] / t["focal"]}
        print(
            f"\nTraining iteration, synthetic-switch RetinaNet, batch of 4 synthetic images, "
            f"median of {args.iters}:"
        )
        print(
            tabulate(
                [
                    ["focal loss + smooth-L1", f"{t['focal'] * 1e3:.0f}", "1.00"],
                    ["aLRP Loss (GIoU) + SB", f"{t['alrp'] * 1e3:.0f}", f"{training['ratio']:.2f}"],
                ],
                headers=["loss", "ms / iter", "vs focal"],
                tablefmt="github",
            )
        )

    out = args.output
    os.makedirs(os.path.dirname(out), exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
    with open(out, "w") as f:
        json.dump({"meta": meta, "loss": results, "training": training}, f, indent=1)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
