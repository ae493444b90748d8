"""Cost of :func:`d2_boxunc.losses.iou_loss` (forward, and forward + backward) against detectron2's
GIoU loss (``fvcore.nn.giou_loss``, what ``box_reg_loss_type="giou"`` calls) on random box pairs.

Boxes are valid (fvcore asserts on inverted ones), 10k pairs by default, float32, reduction "sum".
Each call is timed in turn (interleaved, so machine drift hits all alike); the table gives the
minimum over the repeats (the least disturbed run: the best estimate of the cost on a shared,
loaded machine) and the median. One intra-op thread on CPU by default. Writes benchmarks/results/bench_iou_loss.json.

    python benchmarks/bench_iou_loss.py [--pairs 10000] [--repeats 200] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
from fvcore.nn import giou_loss as fvcore_giou_loss
from tabulate import tabulate

from d2_boxunc.losses import iou_loss

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_pairs(n: int, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 800
    wh = torch.rand(n, 2, generator=g) * 200 + 4
    gt = torch.cat([xy, xy + wh], dim=1)
    pred = gt + torch.randn(n, 4, generator=g) * 0.2 * wh.repeat(1, 2)
    pred = torch.cat([pred[:, :2], torch.maximum(pred[:, 2:], pred[:, :2])], dim=1)  # valid
    return pred.to(device), gt.to(device)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(fn, pred, gt, backward: bool, device: str) -> float:
    p = pred.detach().clone().requires_grad_(backward)
    _sync(device)
    t0 = time.perf_counter()
    loss = fn(p, gt)
    if backward:
        loss.backward()
    _sync(device)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pred, gt = random_pairs(args.pairs, args.device)
    fns = {
        "fvcore giou_loss (detectron2)": lambda p, g: fvcore_giou_loss(p, g, reduction="sum"),
        "d2_boxunc iou_loss giou": lambda p, g: iou_loss(p, g, "giou", reduction="sum"),
        "d2_boxunc iou_loss iou": lambda p, g: iou_loss(p, g, "iou", reduction="sum"),
        "d2_boxunc iou_loss ln_iou": lambda p, g: iou_loss(p, g, "ln_iou", reduction="sum"),
    }
    # same values as the reference on valid boxes
    ref = fvcore_giou_loss(pred, gt, reduction="sum")
    ours = iou_loss(pred, gt, "giou", reduction="sum")
    rel_diff = ((ours - ref).abs() / ref.abs()).item()

    times = {name: {"forward": [], "forward_backward": []} for name in fns}
    for _ in range(10):  # warm-up
        for fn in fns.values():
            time_call(fn, pred, gt, True, args.device)
    for _ in range(args.repeats):
        for backward, key in ((False, "forward"), (True, "forward_backward")):
            for name, fn in fns.items():
                times[name][key].append(time_call(fn, pred, gt, backward, args.device))

    ref_name = "fvcore giou_loss (detectron2)"
    base = min(times[ref_name]["forward_backward"])
    results, rows = {}, []
    for name, t in times.items():
        stats = {
            "forward_min_s": min(t["forward"]),
            "forward_median_s": statistics.median(t["forward"]),
            "forward_backward_min_s": min(t["forward_backward"]),
            "forward_backward_median_s": statistics.median(t["forward_backward"]),
        }
        stats["fwd_bwd_min_vs_fvcore"] = stats["forward_backward_min_s"] / base
        results[name] = stats
        rows.append(
            [
                name,
                *(f"{stats[k] * 1e3:.2f}" for k in list(stats)[:4]),
                f"{stats['fwd_bwd_min_vs_fvcore']:.2f}",
            ]
        )

    print(
        f"\n{args.pairs} box pairs, float32, {args.device}, {args.repeats} repeats "
        f"({torch.get_num_threads()} threads):"
    )
    headers = [
        "loss",
        "fwd min ms",
        "fwd median ms",
        "fwd+bwd min ms",
        "fwd+bwd median ms",
        "fwd+bwd min vs fvcore",
    ]
    print(tabulate(rows, headers=headers, tablefmt="github"))
    print(f"\nGIoU sum, ours vs fvcore: relative difference {rel_diff:.2e}")

    out = os.path.join(ROOT, "benchmarks", "results", "bench_iou_loss.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    meta = {
        "pairs": args.pairs,
        "repeats": args.repeats,
        "device": args.device,
        "device_name": torch.cuda.get_device_name()
        if args.device == "cuda"
        else platform.processor(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    with open(out, "w") as f:
        json.dump(
            {"meta": meta, "giou_rel_diff_vs_fvcore": rel_diff, "results": results}, f, indent=1
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
