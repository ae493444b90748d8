"""ATSS matcher and SSD augmentation costs (CPU, and CUDA when present).

1. Matching one image: :class:`ATSSMatcher` against detectron2's IoU ``Matcher`` with its
   ``pairwise_iou`` (what RetinaNet runs per image), on the anchor sets of the aLRP ATSS configs
   (docs/design.md#retinanet-setting-for-alrp): 512x512 with 2 anchors per location and 800x1333
   with 3, P3-P7, for 7 and 50 ground-truth boxes.
2. Augmenting one 640x480 uint8 image with 7 boxes: ``ssd_augmentations(512)`` against detectron2's
   default ``ResizeShortestEdge(800, 1333) + RandomFlip``.

Writes benchmarks/results/atss.json.

    python benchmarks/bench_atss.py [--reps 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.matcher import Matcher
from detectron2.structures import Boxes, pairwise_iou
from tabulate import tabulate

from d2_boxunc.data import ssd_augmentations
from d2_boxunc.modeling import ATSSMatcher

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def anchors_for(h: int, w: int, scales: int, device: str) -> list[Boxes]:
    sizes = [[32 * 2**i * 2 ** (j / scales) for j in range(scales)] for i in range(5)]
    gen = DefaultAnchorGenerator(sizes=sizes, aspect_ratios=[[1.0]], strides=[8, 16, 32, 64, 128])
    feats = [torch.zeros(1, 1, -(-h // s), -(-w // s), device=device) for s in (8, 16, 32, 64, 128)]
    return gen(feats)


def gt_boxes(n: int, h: int, w: int, device: str) -> Boxes:
    g = torch.Generator().manual_seed(n)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
    wh = (torch.rand(n, 2, generator=g) * 0.3 + 0.02) * torch.tensor([w, h])
    return Boxes(torch.cat([xy, xy + wh], 1).to(device))


def timed(fn, reps: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def bench_matchers(reps: int) -> list[dict]:
    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    d2 = Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True)
    atss = ATSSMatcher()
    for device in devices:
        for h, w, scales in ((512, 512, 2), (800, 1333, 3)):
            levels = anchors_for(h, w, scales, device)
            flat = Boxes.cat(levels)
            for n in (7, 50):
                gt = gt_boxes(n, h, w, device)
                t_atss = timed(lambda: atss(gt, levels), reps, device)
                t_d2 = timed(lambda: d2(pairwise_iou(gt, flat)), reps, device)
                pos = int((atss(gt, levels)[1] == 1).sum())
                rows.append(
                    {
                        "device": device,
                        "input": f"{h}x{w}, {scales}/loc",
                        "anchors": len(flat),
                        "gts": n,
                        "atss_ms": round(t_atss, 3),
                        "d2_maxiou_ms": round(t_d2, 3),
                        "ratio": round(t_atss / t_d2, 2),
                        "atss_positives": pos,
                    }
                )
    return rows


def bench_augmentation(reps: int) -> list[dict]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    xy = rng.uniform(0, 500, (7, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 140, (7, 2))], 1).clip(0, [640, 480, 640, 480])
    pipelines = {
        "ssd_augmentations(512)": T.AugmentationList(ssd_augmentations(512)),
        "ResizeShortestEdge(800)+flip": T.AugmentationList(
            [T.ResizeShortestEdge(800, 1333), T.RandomFlip()]
        ),
    }
    rows = []
    np.random.seed(0)
    for name, aug in pipelines.items():

        def run():
            aug(T.AugInput(image.copy(), boxes=boxes.copy()))

        rows.append({"pipeline": name, "ms_per_image": round(timed(run, reps * 5, "cpu"), 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    matchers = bench_matchers(args.reps)
    augs = bench_augmentation(args.reps)
    print("Matching one image (median ms)")
    print(tabulate(matchers, headers="keys", tablefmt="github"))
    print("\nAugmenting one 640x480 image with 7 boxes (median ms)")
    print(tabulate(augs, headers="keys", tablefmt="github"))
    out = {
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "matching": matchers,
        "augmentation": augs,
    }
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    path = os.path.join(ROOT, "benchmarks", "results", "atss.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    print(f"\nwrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
