"""IoU-Net inference latency per image on CPU, one tiny model (the synthetic-switch I1 model: GN
ResNet-18 FPN, ~256 px inputs), every row the same weights with different test settings, as in
the latency table of the OpenMMLab-IoUNet README (RTX 2080 Ti: 50.0 / 52.9 / 62.1 / 84.8 ms;
https://github.com/thisisi3/OpenMMLab-IoUNet):

1. Faster R-CNN: the R-CNN branch pooled with ROIAlignV2, IoU branch off, detectron2 NMS;
2. IoU-Net R-CNN, head off: PrRoIPool in the R-CNN branch, IoU branch off (row I1a);
3. + IoU head: the IoU branch scores the regressed boxes, standard NMS (head cost alone);
4. + IoU-guided NMS (row I1b);
5. + refinement, lambda 0.5, T = 5 (row I1). Target: <= +30 % end to end over row 4's base (1).

Uses the demo's trained weights when present (``--checkpoint``, default
``output/demo/iounet/model_final.pth``), else random weights (noted; candidate counts are then
unrealistic). Every image runs through every row in turn, so machine drift hits all rows alike.
Writes benchmarks/results/iounet.json.

    python benchmarks/bench_iounet.py [--images 20 --repeats 3 --checkpoint PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import instantiate
from detectron2.data import DatasetCatalog
from detectron2.modeling.poolers import ROIPooler
from tabulate import tabulate

import d2_boxunc.data  # noqa: F401  (registers the synthetic datasets)
from d2_boxunc.config.cli import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "configs/IoUNet/iounet_faster_rcnn_R_50_FPN_1x.py"

ROWS = {  # label -> (box pooler, roi_heads settings)
    "Faster R-CNN (ROIAlignV2, IoU branch off)": ("roialign", dict(test_iou_head=False)),
    "IoU-Net R-CNN, head off (PrRoIPool)": ("prroi", dict(test_iou_head=False)),
    "+ IoU head, standard NMS": (
        "prroi",
        dict(test_iou_head=True, test_nms_type="standard", refine=False, final_score="cls"),
    ),
    "+ IoU-guided NMS": (
        "prroi",
        dict(test_iou_head=True, test_nms_type="iou_guided", refine=False, final_score="cls"),
    ),
    "+ refine (lambda 0.5, T 5)": (
        "prroi",
        dict(test_iou_head=True, test_nms_type="iou_guided", refine=True, final_score="cls_x_iou"),
    ),
}


class StageTimer:
    """Wraps a bound method to accumulate its time."""

    def __init__(self, owner, name: str):
        self.total, self._inner = 0.0, getattr(owner, name)
        setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self._inner(*args, **kwargs)
        self.total += time.perf_counter() - t0
        return out


def build(checkpoint: str | None):
    cfg = load_config(os.path.join(ROOT, CONFIG), [], synthetic=True)
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    loaded = bool(checkpoint and os.path.isfile(checkpoint))
    if loaded:
        DetectionCheckpointer(model).load(checkpoint)
    return model, cfg, loaded


@torch.no_grad()
def run(model, inputs: list[dict], repeats: int) -> dict:
    heads = model.roi_heads
    prroi = heads.box_pooler
    roialign = ROIPooler(
        output_size=prroi.output_size,
        scales=[1.0 / 2**lvl for lvl in range(int(prroi.min_level), int(prroi.max_level) + 1)],
        sampling_ratio=0,
        pooler_type="ROIAlignV2",
    )
    poolers = {"prroi": prroi, "roialign": roialign}
    refine_timer = StageTimer(heads, "refine_boxes")

    def setup(row):
        pooler, settings = ROWS[row]
        heads.box_pooler = poolers[pooler]
        for k, v in settings.items():
            setattr(heads, k, v)

    for row in ROWS:  # warm-up
        setup(row)
        model([inputs[0]])
    stats = {row: ([], [], []) for row in ROWS}
    for _ in range(repeats):
        for x in inputs:
            for row in ROWS:
                setup(row)
                refine_timer.total = 0.0
                t0 = time.perf_counter()
                out = model([x])[0]["instances"]
                end = time.perf_counter() - t0
                for lst, v in zip(stats[row], (end, refine_timer.total, len(out))):
                    lst.append(v)
    heads.box_pooler = prroi
    return {
        row: {
            "end_to_end_s": statistics.median(e),
            "mean_end_to_end_s": statistics.mean(e),
            "refine_s": statistics.median(r),
            "detections": sum(d) / len(d),
        }
        for row, (e, r, d) in stats.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20, help="validation images")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the images")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--checkpoint", default=os.path.join(ROOT, "output/demo/iounet/model_final.pth")
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, cfg, loaded = build(args.checkpoint)
    mapper = instantiate(cfg.dataloader.test.mapper)
    val = DatasetCatalog.get(cfg.dataloader.test.dataset.names)[: args.images]
    inputs = [mapper(dict(d)) for d in val]
    results = run(model, inputs, args.repeats)

    base = results[next(iter(ROWS))]["end_to_end_s"]
    rows = [
        [
            row,
            f"{r['end_to_end_s'] * 1e3:.1f}",
            f"{r['end_to_end_s'] / base:.3f}",
            f"{r['refine_s'] * 1e3:.1f}",
            f"{r['detections']:.0f}",
        ]
        for row, r in results.items()
    ]
    weights = f"trained ({args.checkpoint})" if loaded else "RANDOM (run the iounet demo first)"
    print(
        f"\nIoU-Net inference per image, median over {len(inputs)} synthetic val images x "
        f"{args.repeats}, {args.threads} thread(s), weights: {weights}\n"
    )
    print(
        tabulate(
            rows,
            headers=["test setting", "ms / image", "vs Faster R-CNN", "refine ms", "detections"],
            tablefmt="github",
        )
    )
    labels = list(ROWS)
    refine_overhead = results[labels[4]]["end_to_end_s"] / results[labels[3]]["end_to_end_s"] - 1
    print(
        f"\nrefinement adds {refine_overhead * 100:+.1f}% over '+ IoU-guided NMS' "
        f"(target <= +30%; seed: +37% on a 2080 Ti)"
    )

    out = os.path.join(ROOT, "benchmarks", "results", "iounet.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "weights": weights,
        "images": len(inputs),
        "repeats": args.repeats,
    }
    with open(out, "w") as f:
        json.dump(
            {"meta": meta, "inference": results, "refine_overhead_vs_iou_nms": refine_overhead},
            f,
            indent=1,
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
