"""The aLRP ranking hunt: score vs IoU on the positive anchors of a study's RetinaNet checkpoints.

    python -m d2_boxunc.study.ranking_hunt --output output/study   # focal, aLRP, AP Loss

The study's ``score_iou_spearman`` reads matched detections, about one anchor per object after
NMS.  aLRP's claim is about the positives the loss ranks, so this probes every positive anchor
of each trained checkpoint on the study's validation split
(:func:`d2_boxunc.evaluation.ranking_probe.positive_ranking_probe`), caches the result in the
run's folder (``ranking_probe.json``), and prints seed means with the study's seed-level 95%
intervals for each method against focal loss.  docs/study.md reports the measured figures.
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np
from tabulate import tabulate
from tqdm import tqdm

from .stats import seed_level_interval, verdict

__all__ = ["PROBE_IMAGES", "main", "probe_run", "probe_study_runs"]

METRICS = ("positive_score_iou_spearman", "within_object_spearman", "positive_mean_iou")
PROBE_IMAGES = 100  # first images of the validation split: ~10^4 positive anchors, ~20 s per run


def probe_run(run_dir: str, max_images: int | None = PROBE_IMAGES) -> dict:
    """The probe on one study run (its ``study_key.json`` config and overrides, its final
    checkpoint, its validation split), cached in ``run_dir/ranking_probe.json``."""
    cache = os.path.join(run_dir, "ranking_probe.json")
    with open(os.path.join(run_dir, "study_key.json")) as f:
        key = json.load(f)
    key = {**key, "max_images": max_images}
    if os.path.isfile(cache):
        with open(cache) as f:
            cached = json.load(f)
        if cached.get("key") == key:
            return cached["probe"]
    from detectron2.data import DatasetCatalog

    from ..data.register import prepare_dataset
    from ..evaluation.ranking_probe import positive_ranking_probe
    from ..model_zoo import get_config_file
    from ..visualize import load_model
    from .eval_variants import parse_run_args

    run_args = parse_run_args(key["args"])
    test_coco = tuple(run_args.test_coco) if run_args.test_coco else None
    model, cfg = load_model(
        get_config_file(key["config"]),
        os.path.join(run_dir, "model_final.pth"),
        run_args.opts,
        test_coco=test_coco,
    )
    prepare_dataset(cfg.dataloader.test.dataset.names)  # e.g. the study's boxunc_synth_val500
    dicts = DatasetCatalog.get(cfg.dataloader.test.dataset.names)[:max_images]
    probe = positive_ranking_probe(model, cfg, dicts)
    with open(cache, "w") as f:
        json.dump({"key": key, "probe": probe}, f, indent=1)
    return probe


def probe_study_runs(run_dirs: list[str]) -> None:
    """Probe each trained run of the study (cached; a run without a final checkpoint is left)."""
    todo = [d for d in run_dirs if os.path.isfile(os.path.join(d, "model_final.pth"))]
    for run in tqdm(todo, desc="ranking probe", unit="run", dynamic_ncols=True, disable=not todo):
        probe_run(run)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="output/study", help="the study's output folder")
    parser.add_argument("--methods", default="focal,alrp,aploss", help="first one: the reference")
    parser.add_argument(
        "--max-images",
        type=int,
        default=PROBE_IMAGES,
        help=f"probe the first N validation images (default {PROBE_IMAGES}, as the study does)",
    )
    args = parser.parse_args(argv)
    import torch

    import d2_boxunc.data  # noqa: F401  (registers the datasets)

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    methods = [m for m in args.methods.split(",") if m]
    runs = {
        m: sorted(glob.glob(os.path.join(args.output, "runs", m, "s*", "model_final.pth")))
        for m in methods
    }
    missing = [m for m, r in runs.items() if not r]
    if missing:
        parser.error(f"no trained runs of {', '.join(missing)} under {args.output}/runs")
    values: dict[str, dict[str, list[float]]] = {m: {k: [] for k in METRICS} for m in methods}
    todo = [(m, os.path.dirname(p)) for m in methods for p in runs[m]]
    for m, run in tqdm(todo, desc="ranking probe", unit="ckpt", dynamic_ncols=True):
        probe = probe_run(run, args.max_images)
        for k in METRICS:
            values[m][k].append(probe[k])
    rows = [
        [m, len(values[m][METRICS[0]]), *(f"{np.mean(values[m][k]):.3f}" for k in METRICS)]
        for m in methods
    ]
    print(tabulate(rows, headers=["method", "seeds", *METRICS], tablefmt="github"))
    ref = methods[0]
    diffs = []
    for m in methods[1:]:
        for k in METRICS:
            iv = seed_level_interval(values[m][k], values[ref][k])
            diffs.append(
                [
                    f"{m} - {ref}",
                    k,
                    f"{iv.diff:+.3f}",
                    f"[{iv.ci_low:+.3f}, {iv.ci_high:+.3f}]",
                    verdict(iv),
                ]  # fmt: skip
            )
    print()
    print(tabulate(diffs, headers=["rows", "metric", "diff", "95% CI", "verdict"]))


if __name__ == "__main__":
    main()
