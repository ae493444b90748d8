"""COCO box evaluation time: faster-coco-eval's C++ COCOeval vs pycocotools' Python COCOeval.

A COCO-val-sized result set: 5000 images, ~7 objects each over 80 categories, 100 detections per
image (jittered copies of the objects, misclassified ones and background boxes), so 500k
detections.  Times ``evaluate + accumulate + summarize`` of each backend (loading the results is
the same pycocotools ``loadRes`` for both and is timed separately) and checks that both give the
same 12 summary numbers.  Writes ``benchmarks/results/coco_eval.json``.

    python benchmarks/bench_coco_eval.py [--images 5000] [--dets 100]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import time

import numpy as np
from pycocotools.coco import COCO

from d2_boxunc.evaluation.coco_evaluator import cocoeval_class


def make_dataset(rng, num_images: int, num_cats: int = 80):
    images, anns = [], []
    for i in range(1, num_images + 1):
        w, h = int(rng.integers(480, 641)), int(rng.integers(360, 481))
        images.append({"id": i, "width": w, "height": h, "file_name": f"{i}.jpg"})
        for _ in range(int(rng.poisson(7))):
            bw, bh = rng.uniform(8, w / 2), rng.uniform(8, h / 2)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(rng.integers(1, num_cats + 1)),
                    "bbox": [x, y, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
    cats = [{"id": c, "name": f"c{c}"} for c in range(1, num_cats + 1)]
    return {"images": images, "annotations": anns, "categories": cats}


def make_results(rng, data, dets_per_image: int, num_cats: int = 80):
    by_image: dict[int, list] = {}
    for a in data["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    results = []
    for img in data["images"]:
        objs = by_image.get(img["id"], [])
        for k in range(dets_per_image):
            if objs and k < 4 * len(objs):
                x, y, w, h = objs[k % len(objs)]["bbox"]
                j = rng.normal(0, 0.05 + 0.05 * (k // len(objs)), 4)
                cat = (
                    objs[k % len(objs)]["category_id"]
                    if rng.uniform() < 0.8
                    else int(rng.integers(1, num_cats + 1))
                )
                box = [x + j[0] * w, y + j[1] * h, w * (1 + j[2]), h * (1 + j[3])]
            else:
                bw, bh = rng.uniform(8, 200, 2)
                box = [
                    rng.uniform(0, img["width"] - bw),
                    rng.uniform(0, img["height"] - bh),
                    bw,
                    bh,
                ]
                cat = int(rng.integers(1, num_cats + 1))
            results.append(
                {
                    "image_id": img["id"],
                    "category_id": cat,
                    "bbox": box,
                    "score": float(rng.uniform()),
                }
            )
    return results


def run(backend: str, gt, results):
    cls = cocoeval_class(backend)
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        dt = gt.loadRes([dict(r) for r in results])
        t1 = time.perf_counter()
        ev = cls(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, np.asarray(ev.stats[:12])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--dets", type=int, default=100)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    data = make_dataset(rng, args.images)
    results = make_results(rng, data, args.dets)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
    row = {
        "images": args.images,
        "detections": len(results),
        "annotations": len(data["annotations"]),
    }
    stats = {}
    for backend in ("faster_coco_eval", "pycocotools"):
        load_s, eval_s, stats[backend] = run(backend, gt, results)
        row[f"{backend}_load_s"] = round(load_s, 2)
        row[f"{backend}_eval_s"] = round(eval_s, 2)
        print(
            f"{backend:17s} loadRes {load_s:6.1f} s   evaluate+accumulate+summarize {eval_s:7.1f} s",
            flush=True,
        )
    row["max_abs_stat_diff"] = float(np.abs(stats["faster_coco_eval"] - stats["pycocotools"]).max())
    row["speedup_eval"] = round(row["pycocotools_eval_s"] / row["faster_coco_eval_eval_s"], 1)
    print(
        f"speed-up {row['speedup_eval']}x; largest difference of the 12 summary numbers {row['max_abs_stat_diff']:.2e}"
    )
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "coco_eval.json"), "w") as f:
        json.dump(row, f, indent=1)


if __name__ == "__main__":
    main()
