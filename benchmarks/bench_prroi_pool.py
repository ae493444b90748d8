"""CPU benchmark of PrRoIPool against torchvision's roi_align and the pure-PyTorch reference.

FPN maps of a 800x1088 image (256x200x272 at stride 4, 256x100x136 at stride 8), 512 RoIs each with
sizes that detectron2's level rule sends to that level, 7x7 bins, 2 threads. The reference is timed
on a subset of RoIs and scaled per RoI. Writes benchmarks/results/bench_prroi_pool.json.
"""

import json
import math
import os
import statistics
import time

import torch
from torchvision.ops import roi_align

from d2_boxunc import _extension
from d2_boxunc.layers import prroi_pool
from d2_boxunc.layers._reference import prroi_pool as reference_prroi_pool

IMAGE_H, IMAGE_W = 800, 1088
NUM_ROIS, REF_ROIS, OUT = 512, 64, 7
# (stride, range of sqrt(box area) in pixels that detectron2 assigns to that level)
LEVELS = [(4, (32.0, 112.0)), (8, (112.0, 224.0))]
RESULTS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results", "bench_prroi_pool.json"
)


def random_boxes(num: int, sqrt_area: tuple[float, float]) -> torch.Tensor:
    """(num, 5) RoIs in batch 0: log-uniform size in `sqrt_area`, aspect ratio in [1/2, 2]."""
    lo, hi = math.log(sqrt_area[0]), math.log(sqrt_area[1])
    size = torch.exp(torch.empty(num).uniform_(lo, hi))
    aspect = torch.exp(torch.empty(num).uniform_(math.log(0.5), math.log(2.0)))
    w, h = size * aspect.sqrt(), size / aspect.sqrt()
    x1 = torch.rand(num) * (IMAGE_W - w)
    y1 = torch.rand(num) * (IMAGE_H - h)
    return torch.stack([torch.zeros(num), x1, y1, x1 + w, y1 + h], 1)


def timeit(fn, repeat: int = 5, warmup: int = 10) -> float:
    """Median wall time in ms after `warmup` untimed calls: the steady state of a training run.
    The first calls of a process pay for fresh memory (PrRoIPool's map-sized buffers take ~8 calls
    until the kernel has huge pages ready for them, and are ~2x slower until then)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def forward_backward(pool, feats: torch.Tensor, rois: torch.Tensor, box_grad: bool):
    def run():
        x = feats.detach().requires_grad_()
        r = rois.detach().requires_grad_(box_grad)
        pool(x, r).sum().backward()

    return run


def bench_level(stride: int, sqrt_area: tuple[float, float]) -> dict:
    scale = 1.0 / stride
    feats = torch.randn(1, 256, IMAGE_H // stride, IMAGE_W // stride)
    rois = random_boxes(NUM_ROIS, sqrt_area)
    ops = {
        "prroi_pool": lambda x, r: prroi_pool(x, r, OUT, scale, aligned=True),
        "roi_align": lambda x, r: roi_align(x, r, OUT, scale, sampling_ratio=2, aligned=True),
        "reference": lambda x, r: reference_prroi_pool(x, r, OUT, scale, aligned=True),
    }
    row = {"map": list(feats.shape[1:]), "stride": stride, "sqrt_area_px": list(sqrt_area)}
    with torch.no_grad():
        row["fwd_ms"] = {
            k: timeit(lambda: f(feats, rois)) for k, f in ops.items() if k != "reference"
        }
        ref = timeit(lambda: ops["reference"](feats, rois[:REF_ROIS]), repeat=3, warmup=1)
        row["fwd_ms"]["reference"] = ref * NUM_ROIS / REF_ROIS
    row["fwd_bwd_ms"] = {
        "prroi_pool": timeit(forward_backward(ops["prroi_pool"], feats, rois, True)),
        "roi_align": timeit(forward_backward(ops["roi_align"], feats, rois, False)),
        "reference": timeit(forward_backward(ops["reference"], feats, rois[:REF_ROIS], True), 3, 1)
        * NUM_ROIS
        / REF_ROIS,
    }
    return row


def bench_area() -> list[dict]:
    """Forward time vs RoI side length (in map cells) on the stride-8 map, 512 square RoIs."""
    feats = torch.randn(1, 256, IMAGE_H // 8, IMAGE_W // 8)
    rows = []
    for side in (1, 4, 7, 14, 28, 56, 100):
        x1 = torch.rand(NUM_ROIS) * (feats.shape[3] - side)
        y1 = torch.rand(NUM_ROIS) * (feats.shape[2] - side)
        rois = torch.stack([torch.zeros(NUM_ROIS), x1, y1, x1 + side, y1 + side], 1) * 8
        rois[:, 0] = 0
        with torch.no_grad():
            ours = timeit(lambda: prroi_pool(feats, rois, OUT, 1 / 8))
            theirs = timeit(
                lambda: roi_align(feats, rois, OUT, 1 / 8, sampling_ratio=2, aligned=True)
            )
        rows.append({"side_cells": side, "prroi_pool_ms": ours, "roi_align_ms": theirs})
    return rows


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    if not _extension.has_ops():
        raise SystemExit("d2_boxunc._C is not built; build it first (see README)")
    levels = [bench_level(stride, area) for stride, area in LEVELS]
    area = bench_area()

    print(f"PrRoIPool CPU, {NUM_ROIS} RoIs, {OUT}x{OUT} bins, {torch.get_num_threads()} threads")
    print(f"(reference timed on {REF_ROIS} RoIs and scaled to {NUM_ROIS}; prroi fwd+bwd includes")
    print(" the box gradient, roi_align's does not have one)")
    header = f"{'map':>14} {'pass':>8} {'prroi ms':>9} {'roi_align':>9} {'ref ms':>9} {'/roi_align':>10} {'ref/prroi':>9}"
    print(header)
    for row in levels:
        name = "x".join(map(str, row["map"]))
        for key, label in (("fwd_ms", "fwd"), ("fwd_bwd_ms", "fwd+bwd")):
            t = row[key]
            row[key.replace("_ms", "_ratio_vs_roi_align")] = t["prroi_pool"] / t["roi_align"]
            row[key.replace("_ms", "_speedup_vs_reference")] = t["reference"] / t["prroi_pool"]
            print(
                f"{name:>14} {label:>8} {t['prroi_pool']:9.1f} {t['roi_align']:9.1f} "
                f"{t['reference']:9.0f} {t['prroi_pool'] / t['roi_align']:9.2f}x "
                f"{t['reference'] / t['prroi_pool']:8.0f}x"
            )
    print("\nForward time vs RoI side (stride-8 map 256x100x136, square RoIs):")
    print(f"{'side (cells)':>12} {'prroi ms':>9} {'roi_align':>9} {'ratio':>6}")
    for r in area:
        print(
            f"{r['side_cells']:>12} {r['prroi_pool_ms']:9.1f} {r['roi_align_ms']:9.1f} "
            f"{r['prroi_pool_ms'] / r['roi_align_ms']:6.2f}"
        )
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "num_rois": NUM_ROIS,
                "reference_rois": REF_ROIS,
                "levels": levels,
                "area_scaling": area,
            },
            f,
            indent=2,
        )
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
