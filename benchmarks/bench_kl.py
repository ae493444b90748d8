"""KL-Loss overheads on CPU, on the synthetic-switch model (GN ResNet-18 FPN, ~256 px inputs).

1. Training iteration (forward + backward + AdamW step on one fixed batch of 4 images): the
   KL head (K1) against the plain Faster R-CNN head (K0). Target: <= 5 % overhead.
2. Inference per image, end to end and the box post-processing alone, for each test mode of the
   KL head (hard NMS = detectron2's, NMS + voting, soft-NMS, soft-NMS + voting), relative to the
   same model with detectron2's hard NMS; the plain model is shown too. Target: voting + soft-NMS
   <= 10 % end to end.

Inference uses trained weights when the demo has produced them (``output/demo/kl`` and
``output/demo/baseline``; run ``make demo`` first for realistic candidate counts), else random
weights (noted in the output). Writes benchmarks/results/bench_kl.json.

    python benchmarks/bench_kl.py [--iters 30]
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
from detectron2.utils.events import EventStorage
from tabulate import tabulate

import d2_boxunc.data  # noqa: F401  (registers the synthetic datasets)
from d2_boxunc.config.cli import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x_baseline.py"
KL = "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x.py"
MODES = {  # label -> (test_nms_method, test_var_voting)
    "KL, hard NMS": ("hard", False),
    "KL, NMS + var voting": ("hard", True),
    "KL, soft-NMS": ("soft", False),
    "KL, soft-NMS + var voting": ("soft", True),
}


def build(config: str, checkpoint: str | None):
    cfg = load_config(os.path.join(ROOT, config), [], synthetic=True)
    torch.manual_seed(0)
    model = instantiate(cfg.model)
    loaded = bool(checkpoint and os.path.isfile(checkpoint))
    if loaded:
        DetectionCheckpointer(model).load(checkpoint)
    return model, cfg, loaded


def fixed_batch(cfg, n: int) -> list[dict]:
    mapper = instantiate(cfg.dataloader.train.mapper)
    dicts = DatasetCatalog.get(cfg.dataloader.train.dataset.names)[:n]
    return [mapper(dict(d)) for d in dicts]


def time_training(model, batch, iters: int) -> list[float]:
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    with EventStorage():
        for i in range(iters + 5):
            t0 = time.perf_counter()
            loss = sum(model(batch).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= 5:  # warm-up
                times.append(time.perf_counter() - t0)
    return times


class PostprocessTimer:
    """Wraps ``box_predictor.inference`` to accumulate its time."""

    def __init__(self, predictor):
        self.total, self._inner = 0.0, predictor.inference
        predictor.inference = self

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        out = self._inner(*args, **kwargs)
        self.total += time.perf_counter() - t0
        return out


@torch.no_grad()
def time_inference(runs: dict, inputs: list[dict], repeats: int) -> dict:
    """``runs``: label -> (model, set-up callable). Every image is run through every entry in
    turn (interleaved, so machine drift hits all alike). Returns label -> median per-image seconds
    end to end and in the box post-processing, and mean detections per image."""
    timers = {}
    for label, (model, setup) in runs.items():
        model.eval()
        if not isinstance(model.roi_heads.box_predictor.inference, PostprocessTimer):
            PostprocessTimer(model.roi_heads.box_predictor)
        timers[label] = model.roi_heads.box_predictor.inference
        setup()
        model([inputs[0]])  # warm-up
    stats = {label: ([], [], []) for label in runs}
    for _ in range(repeats):
        for x in inputs:
            for label, (model, setup) in runs.items():
                setup()
                timers[label].total = 0.0
                t0 = time.perf_counter()
                out = model([x])[0]["instances"]
                end = time.perf_counter() - t0
                for lst, v in zip(stats[label], (end, timers[label].total, len(out))):
                    lst.append(v)
    return {
        label: {
            "end_to_end_s": statistics.median(e),
            "postprocess_s": statistics.median(p),
            "detections": sum(d) / len(d),
        }
        for label, (e, p, d) in stats.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=30, help="timed training iterations")
    parser.add_argument("--images", type=int, default=20, help="validation images for inference")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the images")
    parser.add_argument(
        "--kl-checkpoint", default=os.path.join(ROOT, "output/demo/kl/model_final.pth")
    )
    parser.add_argument(
        "--baseline-checkpoint", default=os.path.join(ROOT, "output/demo/baseline/model_final.pth")
    )
    args = parser.parse_args()

    base, base_cfg, base_loaded = build(BASE, args.baseline_checkpoint)
    kl, kl_cfg, kl_loaded = build(KL, args.kl_checkpoint)
    batch = fixed_batch(base_cfg, 4)
    # interleave the two models in rounds so that machine drift hits both alike
    train = {"baseline": [], "KL": []}
    for _ in range(3):
        train["baseline"] += time_training(base, batch, args.iters // 3)
        train["KL"] += time_training(kl, batch, args.iters // 3)
    t_base, t_kl = statistics.median(train["baseline"]), statistics.median(train["KL"])
    train_rows = [
        ["Faster R-CNN head (K0)", f"{t_base * 1e3:.0f}", "1.00"],
        ["KL head (K1)", f"{t_kl * 1e3:.0f}", f"{t_kl / t_base:.3f}"],
    ]

    base, _, _ = build(BASE, args.baseline_checkpoint)
    kl, _, _ = build(KL, args.kl_checkpoint)
    mapper = instantiate(base_cfg.dataloader.test.mapper)
    val = DatasetCatalog.get(base_cfg.dataloader.test.dataset.names)[: args.images]
    inputs = [mapper(dict(d)) for d in val]
    predictor = kl.roi_heads.box_predictor

    def mode(method, voting):
        def setup():
            predictor.test_nms_method, predictor.test_var_voting = method, voting

        return setup

    runs = {"Faster R-CNN, hard NMS (K0)": (base, lambda: None)}
    runs.update({label: (kl, mode(*m)) for label, m in MODES.items()})
    results = time_inference(runs, inputs, repeats=args.repeats)
    ref = results["KL, hard NMS"]
    infer_rows = [
        [
            label,
            f"{r['end_to_end_s'] * 1e3:.1f}",
            f"{r['postprocess_s'] * 1e3:.2f}",
            f"{r['end_to_end_s'] / ref['end_to_end_s']:.3f}",
            f"{r['detections']:.0f}",
        ]
        for label, r in results.items()
    ]

    weights = ", ".join(
        f"{name} {'trained' if loaded else 'RANDOM (run make demo first)'}"
        for name, loaded in (("K0", base_loaded), ("KL", kl_loaded))
    )
    print(f"\nTraining iteration, batch of 4 synthetic images, median of {len(train['KL'])}:")
    print(tabulate(train_rows, headers=["head", "ms / iter", "vs baseline"], tablefmt="github"))
    print(
        f"\nInference per image, median over {len(inputs)} validation images, weights: {weights}:"
    )
    print(
        tabulate(
            infer_rows,
            headers=[
                "model / test mode",
                "end to end ms",
                "post-process ms",
                "end to end vs KL hard NMS",
                "detections",
            ],
            tablefmt="github",
        )
    )

    out = os.path.join(ROOT, "benchmarks", "results", "bench_kl.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    meta = {
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "weights": weights,
    }
    with open(out, "w") as f:
        json.dump(
            {
                "meta": meta,
                "training_s_per_iter": {"baseline": t_base, "KL": t_kl, "ratio": t_kl / t_base},
                "inference": results,
            },
            f,
            indent=1,
        )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
