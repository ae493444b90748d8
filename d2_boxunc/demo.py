"""``make demo``: train each method on the synthetic dataset on CPU and compare them side by side.

    python -m d2_boxunc.demo                   # every method
    python -m d2_boxunc.demo --method baseline # one method

Each method is one paper config run through ``train_net.py --synthetic`` (a separate process,
so every run starts clean), followed by eval-only variants of the same checkpoint where the method
has inference-time options.  Results land in ``output/demo/<method>/``; the table is printed at the
end and written to ``output/demo/results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from tabulate import tabulate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


@dataclass
class Variant:
    """An eval-only variant of a method's checkpoint: a row label and its overrides."""

    label: str
    overrides: list[str] = field(default_factory=list)
    config: str | None = None  # another config file sharing the checkpoint (eval-only rows)


@dataclass
class Method:
    """A demo entry: the config to train and the rows to report."""

    config: str
    label: str
    overrides: list[str] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)
    # after training: (model, cfg, output_dir) -> lines for the summary (pictures, statistics)
    report: Callable | None = None


def kl_report(model, cfg, out: str) -> list[str]:
    """KL-Loss: does the predicted sigma track the error, and is it larger on blurred edges?"""
    from detectron2.data import DatasetCatalog

    from d2_boxunc.evaluation.sigma_report import predict_dataset, sigma_report

    dicts = DatasetCatalog.get(cfg.dataloader.test.dataset.names)
    report = sigma_report(predict_dataset(model, cfg, dicts))
    with open(os.path.join(out, "sigma_report.json"), "w") as f:
        json.dump(report.as_dict(), f, indent=2)
    return [f"KL-Loss: {line}" for line in report.lines()]


KL = "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x"
METHODS: dict[str, Method] = {
    "baseline": Method(
        config="configs/Baselines/faster_rcnn_R_50_FPN_1x.py",
        label="Faster R-CNN (baseline)",
    ),
    "kl": Method(
        config=f"{KL}.py",
        label="+ KL-Loss",
        variants=[
            Variant("+ KL-Loss + var voting", config=f"{KL}_varvote.py"),
            Variant("+ KL-Loss + var voting + soft-NMS", config=f"{KL}_varvote_softnms.py"),
        ],
        report=kl_report,
    ),
    "giou": Method(
        config="configs/GIoU/giou_faster_rcnn_R_50_FPN_1x.py",
        label="+ GIoU loss (ROI)",
    ),
    "iou": Method(
        config="configs/GIoU/giou_faster_rcnn_R_50_FPN_1x_iou.py",
        label="+ IoU loss (ROI)",
    ),
}


def _train_net(args: list[str], log_path: str) -> None:
    script = os.path.join(REPO, "train_net.py")
    if not os.path.isfile(script):
        raise SystemExit(f"demo: {script} not found; run the demo from a checkout of d2_boxunc")
    with open(log_path, "w") as log:
        proc = subprocess.run(
            [sys.executable, script, *args], stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = "".join(f.readlines()[-30:])
        raise SystemExit(f"demo: train_net.py failed (log: {log_path}):\n{tail}")


def _results(output_dir: str) -> dict:
    with open(os.path.join(output_dir, "eval_results.json")) as f:
        return json.load(f)["bbox"]


def run_method(name: str, method: Method, root: str, max_iter: int | None) -> tuple[list, list]:
    """Train ``method``, evaluate its variants; return table rows and report lines."""
    out = os.path.join(root, name)
    os.makedirs(out, exist_ok=True)
    common = ["--synthetic"] + ([f"train.max_iter={max_iter}"] if max_iter else [])
    print(f"[demo] {name}: training {method.config} (log: {out}/train.log)", flush=True)
    t0 = time.time()
    _train_net(
        ["--config-file", method.config, *common, f"train.output_dir={out}", *method.overrides],
        os.path.join(out, "train.log"),
    )
    train_min = (time.time() - t0) / 60
    rows = [[method.label, *(_results(out)[m] for m in METRICS), f"{train_min:.1f}"]]
    checkpoint = os.path.join(out, "model_final.pth")
    for i, v in enumerate(method.variants):
        vout = os.path.join(out, f"eval_{i}")
        print(f"[demo] {name}: evaluating '{v.label}'", flush=True)
        _train_net(
            ["--config-file", v.config or method.config, "--eval-only", *common,
             f"train.init_checkpoint={checkpoint}", f"train.output_dir={vout}",
             *method.overrides, *v.overrides],
            os.path.join(vout + ".log"),
        )
        rows.append([v.label, *(_results(vout)[m] for m in METRICS), "(same ckpt)"])
    from d2_boxunc.visualize import load_model

    model, cfg = load_model(os.path.join(REPO, method.config), checkpoint, method.overrides)
    _save_picture(model, cfg, out)
    notes = method.report(model, cfg, out) if method.report else []
    for line in notes:
        print(f"[demo] {line}", flush=True)
    return rows, notes


def _save_picture(model, cfg, out: str, num_images: int = 4) -> None:
    """Draw the trained model's detections on a few validation images with detectron2's Visualizer."""
    from PIL import Image

    from detectron2.data import DatasetCatalog

    from d2_boxunc.visualize import draw_panels

    dicts = DatasetCatalog.get(cfg.dataloader.test.dataset.names)[:num_images]
    path = os.path.join(out, "detections.png")
    Image.fromarray(draw_panels(model, cfg, dicts)).save(path)
    print(f"[demo] saved {path}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--method", default="all", help=f"one of {', '.join(METHODS)} or 'all' (default)"
    )
    parser.add_argument("--output", default=os.path.join(REPO, "output", "demo"))
    parser.add_argument("--max-iter", type=int, default=None, help="override training length")
    args = parser.parse_args(argv)
    names = list(METHODS) if args.method == "all" else [args.method]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        parser.error(f"unknown method '{unknown[0]}'; choose from {', '.join(METHODS)} or all")

    import d2_boxunc  # noqa: F401
    from d2_boxunc.data import SPLITS, ensure_generated

    t0 = time.time()
    for split, cfg in SPLITS.items():
        print(f"[demo] dataset {split}: {ensure_generated(split, cfg)}", flush=True)
    rows, notes = [], []
    for name in names:
        method_rows, method_notes = run_method(name, METHODS[name], args.output, args.max_iter)
        rows += method_rows
        notes += method_notes
    table = tabulate(
        rows, headers=["method", *METRICS, "train min"], floatfmt=".1f", tablefmt="github"
    )
    print("\nBox AP on boxunc_synth_val (COCO metrics, CPU-trained, synthetic switch):\n")
    print(table)
    if notes:
        print("\n" + "\n".join(notes))
    with open(os.path.join(args.output, "results.md"), "w") as f:
        f.write(table + "\n" + "".join(f"\n- {line}" for line in notes) + "\n")
    print(f"\n[demo] outputs in {args.output} (total {(time.time() - t0) / 60:.1f} min)")


if __name__ == "__main__":
    main()
