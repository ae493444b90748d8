"""CPU latency per image of each method's model: eager detectron2 inference vs. the program of
``python -m d2_boxunc.export`` (torch.export), one thread, on synthetic validation images resized
by the test mapper (~256 px short side, the synthetic-switch models: GN ResNet-18 FPN).

Rows: KL-Loss with variance voting + soft-NMS (K3), IoU-Net with IoU-guided NMS and refinement
(I1), GIoU Faster R-CNN, aLRP RetinaNet (ATSS). Weights: ``<--weights>/<run>/s0/model_final.pth``
of the study (``python -m d2_boxunc.study``) when present and fitting, else random (noted; random
weights give other candidate counts, so other NMS costs). Each image runs eager and exported in
turn, ``--repeats`` times; the median CPU time per image is reported, with the largest box difference
between the two (0 means the same detections). Writes benchmarks/results/export.json.

    OMP_NUM_THREADS=1 python benchmarks/bench_export.py [--images 5 --repeats 3 --weights DIR]
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
from tabulate import tabulate

import d2_boxunc.data  # noqa: F401  (registers the synthetic datasets)
from d2_boxunc.config.cli import load_config
from d2_boxunc.export import export_model
from d2_boxunc.predict import checkpoint_mismatch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = {  # label: (config, study run whose weights it uses)
    "KL-Loss + var voting + soft-NMS": (
        "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x_varvote_softnms.py",
        "kl",
    ),
    "IoU-Net (IoU-guided NMS + refinement)": (
        "configs/IoUNet/iounet_faster_rcnn_R_50_FPN_1x.py",
        "iounet",
    ),
    "GIoU Faster R-CNN": ("configs/GIoU/giou_faster_rcnn_R_50_FPN_1x.py", "giou"),
    "aLRP RetinaNet (ATSS)": (
        "configs/aLRPLoss/alrp_retinanet_R_101_FPN_100ep_512_atss.py",
        "alrp",
    ),
}


def _median_ms(fn, image, repeats: int) -> float:
    """Median CPU time of the process (one thread: the latency on an idle core, unlike wall
    time on a shared machine)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn(image)
        times.append(time.process_time() - start)
    return 1000 * statistics.median(times)


def bench(label, config, run, args) -> dict:
    cfg = load_config(os.path.join(ROOT, config), ["train.device=cpu"], synthetic=True)
    torch.manual_seed(0)
    model = instantiate(cfg.model).eval()
    ckpt = os.path.join(args.weights, run, "s0", "model_final.pth")
    trained = os.path.isfile(ckpt) and checkpoint_mismatch(model, ckpt) is None
    if trained:
        DetectionCheckpointer(model).load(ckpt)
    mapper = instantiate(cfg.dataloader.test.mapper)
    dicts = DatasetCatalog.get("boxunc_synth_val")[: args.images]
    images = [mapper(dict(d))["image"].float() for d in dicts]

    start = time.process_time()
    program = export_model(model, images[0])[0].module()
    export_s = time.process_time() - start

    def eager(image):
        with torch.no_grad():
            return model([{"image": image}])[0]["instances"]

    eager_ms, exported_ms, diffs, counts = [], [], [], []
    eager(images[0]), program(images[0])  # warm-up
    for image in images:
        ref, out = eager(image), program(image)
        counts.append(len(ref))
        same = len(ref) == len(out[0]) and torch.equal(ref.pred_classes, out[2])
        diff = (ref.pred_boxes.tensor - out[0]).abs().max().item() if same and len(ref) else 0.0
        diffs.append(diff if same else float("inf"))
        eager_ms.append(_median_ms(eager, image, args.repeats))
        exported_ms.append(_median_ms(program, image, args.repeats))
    return {
        "method": label,
        "weights": "trained" if trained else "random",
        "detections/img": statistics.mean(counts),
        "eager ms": statistics.median(eager_ms),
        "exported ms": statistics.median(exported_ms),
        "exported / eager": statistics.median(exported_ms) / statistics.median(eager_ms),
        "max box diff px": max(diffs),
        "export CPU s": export_s,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--weights", default=os.path.join(ROOT, "output", "study", "runs"))
    p.add_argument("--only", nargs="*", help="substrings of the method labels to run")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = [
        bench(label, config, run, args)
        for label, (config, run) in METHODS.items()
        if not args.only or any(s.lower() in label.lower() for s in args.only)
    ]
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, 1 thread")
    print(tabulate(rows, headers="keys", floatfmt=".4g"))
    os.makedirs(os.path.join(ROOT, "benchmarks", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "benchmarks", "results", "export.json"), "w") as f:
        json.dump({"torch": torch.__version__, "threads": 1, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
