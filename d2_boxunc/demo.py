"""``make demo``: train each method on the synthetic dataset on CPU and compare them side by side.

    python -m d2_boxunc.demo                   # baseline and one row per paper (~13 min)
    python -m d2_boxunc.demo --method all      # also the IoU loss and focal-loss RetinaNet
    python -m d2_boxunc.demo --method kl,giou  # chosen methods

Each method is one paper config run through ``train_net.py --synthetic`` (a separate process,
so every run starts clean), followed by eval-only variants of the same checkpoint where the method
has inference-time options.  Results land in ``output/demo/<method>/``; the table is printed at the
end and written to ``output/demo/results.md``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from tabulate import tabulate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("AP", "AP50", "AP60", "AP70", "AP75", "AP80", "AP90", "APs", "APm", "APl")
DEMO_MAX_ITER = 400
# `make demo`: the baseline and one trained row per paper, to fit 15 minutes on 2 cores; the IoU
# loss and focal RetinaNet are trained comparisons, which only the study can judge.
DEFAULT_METHODS = ("baseline", "giou", "kl", "iounet", "alrp")


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
    iter_cost: float = 1.0  # time per training iteration relative to Faster R-CNN (scheduling)


def _validation_run(out: str):
    """The run's saved validation detections, matched as the evidence study matches them."""
    from d2_boxunc.study.metrics import load_run

    return load_run(_validation_gt(), out)


def kl_report(model, cfg, out: str) -> list[str]:
    """KL-Loss: does the predicted σ track the error, and is it larger on blurred edges?  From
    the saved detections (the study's metrics) and a probe of the head on the true boxes."""
    from detectron2.data import DatasetCatalog

    from d2_boxunc.evaluation.sigma_probe import sigma_at_ground_truth
    from d2_boxunc.study.metrics import metric

    run = _validation_run(out)
    report = {
        "num_matched": len(run.size),
        "sigma_err_spearman": metric(run, "sigma_err_spearman"),
        "sigma_blur_gap": metric(run, "sigma_blur_gap"),
        **sigma_at_ground_truth(model, cfg, DatasetCatalog.get(cfg.dataloader.test.dataset.names)),
    }
    with open(os.path.join(out, "sigma_report.json"), "w") as f:
        json.dump(report, f, indent=2)
    return [
        f"KL-Loss: sigma vs |error|: Spearman {report['sigma_err_spearman']:.3f} over "
        f"{report['num_matched']} detections matched at IoU >= 0.5 (x 4 coordinates); mean "
        f"sigma / size, blurred-edge minus sharp objects: {report['sigma_blur_gap']:+.4f}",
        f"KL-Loss: sigma / size with the true box as RoI: blurred-edge objects "
        f"{report['rel_sigma_at_gt_blurred']:.4f} vs sharp {report['rel_sigma_at_gt_sharp']:.4f}",
    ]


def alrp_report(model, cfg, out: str) -> list[str]:
    """aLRP: the self-balance weight the run ended with (it starts at 50)."""
    if not hasattr(model, "sb_weight"):
        return []
    return [
        f"aLRP: self-balance weight w_SB = {float(model.sb_weight):.2f} after training "
        f"(started at 50, updated once per epoch)"
    ]


def iounet_report(model, cfg, out: str) -> list[str]:
    """IoU-Net (Fig. 2 claim): does the predicted IoU track the true IoU better than the class
    score?  From the saved detections; saves ``iou_report.json`` and ``iou_scatter.png``."""
    from d2_boxunc.study.metrics import metric
    from d2_boxunc.study.report import iou_scatter

    run = _validation_run(out)
    report = {
        "num_matched": len(run.size),
        "iou_spearman": metric(run, "iou_spearman"),
        "score_iou_spearman": metric(run, "score_iou_spearman"),
    }
    with open(os.path.join(out, "iou_report.json"), "w") as f:
        json.dump(report, f, indent=2)
    path = os.path.join(out, "iou_scatter.png")
    iou_scatter(run, "IoU-Net", path)
    return [
        f"IoU-Net: Spearman with the true IoU: predicted IoU {report['iou_spearman']:.3f}, class "
        f"score {report['score_iou_spearman']:.3f} ({report['num_matched']} detections matched "
        f"at IoU >= 0.5); saved {path}"
    ]


KL = "configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x"
IOUNET = "configs/IoUNet/iounet_faster_rcnn_R_50_FPN"
METHODS: dict[str, Method] = {
    "baseline": Method(
        config="configs/Baselines/faster_rcnn_R_50_FPN_1x.py",
        label="Faster R-CNN (baseline)",
    ),
    "iou": Method(
        config="configs/GIoU/giou_faster_rcnn_R_50_FPN_1x_iou.py",
        label="+ IoU loss (ROI)",
    ),
    "giou": Method(
        config="configs/GIoU/giou_faster_rcnn_R_50_FPN_1x.py",
        label="+ GIoU loss (ROI)",
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
    "iounet": Method(
        config=f"{IOUNET}_1x.py",
        label="IoU-Net: IoU-NMS + refine (I1)",
        # 1000 jittered RoIs per image go with 512 R-CNN RoIs; the synthetic switch samples 128
        overrides=["model.roi_heads.iou_roi_generator.num_samples=256"],
        variants=[
            Variant("IoU-Net: IoU head off (I1a)", config=f"{IOUNET}_1x_nohead.py"),
            Variant("IoU-Net: + IoU-guided NMS, no refine (I1b)", config=f"{IOUNET}_1x_iounms.py"),
            Variant(
                "IoU-Net: improved (key cls x IoU, lambda 2)",
                config=f"{IOUNET}_2x_refine.py",
                overrides=[
                    "model.roi_heads.refine_lambda=2.0",
                    "model.roi_heads.test_nms_key=cls_x_iou",
                ],
            ),
        ],
        report=iounet_report,
    ),
    # RetinaNet rows A1 (aLRP) and its focal-loss twin (docs/design.md): same anchors and recipe.
    # The paper configs train through d2_boxunc's box-aware SSD mapper; the synthetic switch
    # replaces the SSD augmentations with resize + flip, which detectron2's plain mapper runs.
    "retinanet": Method(
        config="configs/aLRPLoss/focal_retinanet_R_50_FPN_100ep_512.py",
        label="RetinaNet (focal loss)",
        overrides=["dataloader.train.mapper._target_=detectron2.data.DatasetMapper"],
        iter_cost=0.8,
    ),
    "alrp": Method(
        config="configs/aLRPLoss/alrp_retinanet_R_50_FPN_100ep_512.py",
        label="RetinaNet (aLRP Loss)",
        overrides=["dataloader.train.mapper._target_=detectron2.data.DatasetMapper"],
        report=alrp_report,
        iter_cost=0.8,
    ),
}


def _train_net(args: list[str], log_path: str, threads: int, progress, weight: int, out=None):
    """One ``train_net.py`` run, counted on the console bar (a training, ``out`` given, as its
    iterations go)."""
    from d2_boxunc.study.runner import TRAIN_NET, run_train_net

    if not os.path.isfile(TRAIN_NET):
        raise SystemExit(f"demo: {TRAIN_NET} not found; run the demo from a checkout of d2_boxunc")
    try:
        with progress.run(weight, out):
            run_train_net(args, log_path, threads)
    except RuntimeError as e:
        raise SystemExit(f"demo: {e}") from None


def _eval_weight() -> int:
    """An evaluation of the demo's validation split, in training iterations (progress bar)."""
    from d2_boxunc.config.synthetic import TEST_DATASET
    from d2_boxunc.data import SPLITS
    from d2_boxunc.study.progress import eval_iters

    return eval_iters(SPLITS[TEST_DATASET].num_images)


def _method_weight(method: Method, max_iter: int) -> int:
    """A method's cost on the progress bar, in Faster R-CNN training iterations: training, its
    evaluation, the variants', the report."""
    return round(max_iter * method.iter_cost) + (len(method.variants) + 2) * _eval_weight()


def _row(label: str, output_dir: str, train_min: str, delta: str = "") -> list:
    """A table row: COCO box metrics, oLRP (when the LRP evaluator ran), training minutes and,
    for an eval-only row, its paired AP difference."""
    with open(os.path.join(output_dir, "eval_results.json")) as f:
        results = json.load(f)
    olrp = results.get("lrp", {}).get("oLRP", float("nan"))
    return [label, *(results["bbox"][m] for m in METRICS), olrp, train_min, delta]


@functools.cache
def _validation_gt():
    """The validation ground truth as a pycocotools ``COCO`` (loaded once)."""
    import contextlib
    import io

    from detectron2.data import MetadataCatalog
    from pycocotools.coco import COCO

    from d2_boxunc.config.synthetic import TEST_DATASET

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(MetadataCatalog.get(TEST_DATASET).json_file)


def paired_difference(base_dir: str, variant_dir: str, resamples: int = 1000) -> str:
    """AP difference of an eval-only row over its checkpoint's own row with its 95% interval, a
    paired bootstrap over the validation images (the evidence study's statistics, one seed)."""
    from d2_boxunc.study.metrics import metric
    from d2_boxunc.study.stats import percentile_interval, resample_counts

    base, variant = _validation_run(base_dir), _validation_run(variant_dir)
    counts = resample_counts(base.tables.num_images, resamples)
    reps = [metric(variant, "AP", w) - metric(base, "AP", w) for w in counts]
    iv = percentile_interval(metric(variant, "AP") - metric(base, "AP"), reps)
    return f"{iv.diff:+.1f} [{iv.ci_low:+.1f}, {iv.ci_high:+.1f}]"


def run_method(
    name: str, method: Method, root: str, max_iter: int, progress, threads: int = 1
) -> tuple[list, list]:
    """Train ``method``, evaluate its variants; return table rows and report lines."""
    out = os.path.join(root, name)
    os.makedirs(out, exist_ok=True)
    # ~10 points of the loss curve in metrics.json, the first one before warm-up ends
    common = [
        "--synthetic",
        f"train.max_iter={max_iter}",
        f"train.log_period={max(1, min(20, max_iter // 10))}",
    ]
    progress.write(f"[demo] {name}: training {method.config} (log: {out}/train.log)")
    t0 = time.time()
    _train_net(
        [
            "--config-file",
            method.config,
            *common,
            f"train.output_dir={out}",
            *method.overrides,
        ],
        os.path.join(out, "train.log"),
        threads,
        progress,
        round(max_iter * method.iter_cost) + _eval_weight(),
        out,
    )
    train_min = (time.time() - t0) / 60
    rows = [_row(method.label, out, f"{train_min:.1f}")]
    checkpoint = os.path.join(out, "model_final.pth")
    for i, v in enumerate(method.variants):
        vout = os.path.join(out, f"eval_{i}")
        progress.write(f"[demo] {name}: evaluating '{v.label}'")
        _train_net(
            [
                "--config-file",
                v.config or method.config,
                "--eval-only",
                *common,
                f"train.init_checkpoint={checkpoint}",
                f"train.output_dir={vout}",
                *method.overrides,
                *v.overrides,
            ],
            os.path.join(vout + ".log"),
            threads,
            progress,
            _eval_weight(),
        )
        rows.append(_row(v.label, vout, "(same ckpt)", paired_difference(out, vout)))
    from d2_boxunc.model_zoo import get_config_file
    from d2_boxunc.visualize import load_model

    with progress.run(_eval_weight()):
        model, cfg = load_model(get_config_file(method.config), checkpoint, method.overrides)
        progress.write(f"[demo] saved {_save_picture(model, cfg, out)}")
        notes = method.report(model, cfg, out) if method.report else []
    for line in notes:
        progress.write(f"[demo] {line}")
    return rows, notes


def _save_picture(model, cfg, out: str, num_images: int = 4) -> str:
    """Draw the trained model's detections on a few validation images with detectron2's Visualizer."""
    from detectron2.data import DatasetCatalog
    from PIL import Image

    from d2_boxunc.visualize import draw_panels

    dicts = DatasetCatalog.get(cfg.dataloader.test.dataset.names)[:num_images]
    path = os.path.join(out, "detections.png")
    Image.fromarray(draw_panels(model, cfg, dicts)).save(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--method",
        default="default",
        help=f"'default' ({','.join(DEFAULT_METHODS)}), 'all', or a comma-separated list of "
        f"{', '.join(METHODS)}",
    )
    parser.add_argument("--output", default=os.path.join(REPO, "output", "demo"))
    parser.add_argument(
        "--max-iter",
        type=int,
        default=DEMO_MAX_ITER,
        help=f"training iterations per method (default {DEMO_MAX_ITER}, to fit the whole demo in "
        "15 minutes on 2 cores)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="methods run side by side, each with cpu_count/jobs threads (default: 2 if possible)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be >= 1")
    if args.max_iter < 1:
        parser.error("--max-iter must be >= 1")
    chosen = {"all": list(METHODS), "default": list(DEFAULT_METHODS)}
    names = chosen.get(args.method, [n for n in args.method.split(",") if n])
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        parser.error(
            f"unknown method '{unknown[0]}'; choose from {', '.join(METHODS)}, default or all"
        )

    import d2_boxunc.data  # noqa: F401  (registers the synthetic datasets)
    from d2_boxunc.data import SPLITS, ensure_generated

    t0 = time.time()
    for split, cfg in SPLITS.items():
        print(f"[demo] dataset {split}: {ensure_generated(split, cfg)}", flush=True)
    # One torch process per core beats one process using both cores: small models do not scale.
    jobs = min(args.jobs, len(names))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    import torch

    torch.set_num_threads(threads)  # the in-process pictures and reports, one per job thread
    from d2_boxunc.study.progress import RunProgress

    weight = {n: _method_weight(METHODS[n], args.max_iter) for n in names}
    progress = RunProgress(sum(weight.values()), "demo")
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            # longest first, so the last method to start is a short one (the table keeps `names`)
            futures = {
                n: pool.submit(
                    run_method, n, METHODS[n], args.output, args.max_iter, progress, threads
                )
                for n in sorted(names, key=weight.get, reverse=True)
            }
            results = [futures[n].result() for n in names]  # re-raises a failed method
    finally:
        progress.close()
    rows = [row for method_rows, _ in results for row in method_rows]
    notes = [line for _, method_notes in results for line in method_notes]
    table = tabulate(
        rows,
        headers=["method", *METRICS, "oLRP", "train min", "ΔAP vs ckpt row [95% CI]"],
        floatfmt=".1f",
        tablefmt="github",
    )
    print(
        f"\nBox AP on boxunc_synth_val (COCO metrics; oLRP x100, lower is better; CPU-trained, "
        f"synthetic switch, {args.max_iter} iterations):\n"
    )
    print(table)
    print(
        "\nOne seed: differences between trained rows are within run-to-run noise at this budget;"
        " the intervals of eval-only rows are paired over validation images of one checkpoint."
        " Trained-method verdicts with intervals: `make study` (README, Results)."
    )
    if notes:
        print("\n" + "\n".join(notes))
    with open(os.path.join(args.output, "results.md"), "w") as f:
        f.write(table + "\n" + "".join(f"\n- {line}" for line in notes) + "\n")
    print(f"\n[demo] outputs in {args.output} (total {(time.time() - t0) / 60:.1f} min)")


if __name__ == "__main__":
    main()
