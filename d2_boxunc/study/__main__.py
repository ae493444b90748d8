"""``python -m d2_boxunc.study``: the evidence study (``make study``).

    python -m d2_boxunc.study                                  # every method, 3 seeds
    python -m d2_boxunc.study --methods baseline,kl --seeds 2 --max-iter 300 --output output/s

Trains every method once per seed on CPU (``--synthetic``; seeds change initialisation and data
order), evaluates the eval-only variants on the same checkpoints, and compares rows with 95%
confidence intervals: paired bootstrap over validation images for variants of one checkpoint,
seed-level (Welch) intervals widened by the image bootstrap for trained methods.  Each paper
claim of :data:`d2_boxunc.study.plan.CLAIMS` gets a verdict.  Checkpoints and evaluations are
cached by (config, overrides, seed, settings), so a rerun trains only what changed.  Writes
``OUTPUT/results.json`` and ``OUTPUT/report.md`` with plots; docs/study.md explains the setting.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import sys
import time

from .plan import (
    BACKBONE_DTYPES,
    DEFAULT_BACKBONE_DTYPE,
    DEFAULT_METHODS,
    METHODS,
    backbone_overrides,
)

DEFAULT_MAX_ITER = 1000
DEFAULT_SEEDS = 3
DEFAULT_VAL_IMAGES = 500


def get_parser() -> argparse.ArgumentParser:
    from d2_boxunc.config.cli import add_own_data_arguments

    p = argparse.ArgumentParser(
        prog="python -m d2_boxunc.study", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--methods",
        default="all",
        help=f"comma-separated, from: {', '.join(METHODS)} (default: all = "
        f"{','.join(DEFAULT_METHODS)}; the others run on request: controls for bug hunts, and "
        "extensions, docs/retinanet_heads.md and docs/composition.md)",
    )
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds per method (default 3)")
    p.add_argument(
        "--max-iter",
        type=int,
        default=DEFAULT_MAX_ITER,
        help=f"training iterations (default {DEFAULT_MAX_ITER})",
    )
    p.add_argument(
        "--val-images",
        type=int,
        default=DEFAULT_VAL_IMAGES,
        help="synthetic validation images (default 500)",
    )
    p.add_argument(
        "--train-dataset", default="boxunc_synth_train", help="registered training dataset"
    )
    p.add_argument(
        "--test-dataset",
        default=None,
        help="registered test dataset (default: boxunc_synth_val<N>)",
    )
    p.add_argument("--output", default=os.path.join("output", "study"))
    p.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs side by side"
    )
    p.add_argument(
        "--backbone-dtype",
        choices=BACKBONE_DTYPES,
        default=DEFAULT_BACKBONE_DTYPE,
        help=f"autocast dtype of every run's backbone; heads and losses stay float32 "
        f"(default {DEFAULT_BACKBONE_DTYPE}; float32 = the plain FPN)",
    )
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument(
        "--analyse-only", action="store_true", help="report from the runs already in OUTPUT"
    )
    add_own_data_arguments(p)
    p.add_argument("opts", nargs=argparse.REMAINDER, help="key=value overrides for every run")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = get_parser().parse_args(argv)
    names = (
        list(DEFAULT_METHODS)
        if args.methods == "all"
        else [n.strip() for n in args.methods.split(",") if n.strip()]
    )
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise SystemExit(
            f"study: error: unknown method '{unknown[0]}'; choose from {', '.join(METHODS)}"
        )
    if args.seeds < 1 or args.max_iter < 1 or args.val_images < 1 or args.resamples < 1:
        raise SystemExit(
            "study: error: --seeds, --max-iter, --val-images and --resamples must be >= 1"
        )
    if args.train_coco and not args.test_coco:
        raise SystemExit("study: error: --train-coco needs --test-coco")

    from detectron2.data import MetadataCatalog
    from pycocotools.coco import COCO

    import d2_boxunc.data  # noqa: F401  (registers the synthetic datasets)
    from d2_boxunc.data.register import prepare_dataset, sized_validation_split

    from .analysis import Analysis
    from .metrics import load_run
    from .report import write_report
    from .runner import Settings, plan_steps, run_steps

    own = []
    if args.train_coco:
        own += ["--train-coco", *map(os.path.abspath, args.train_coco)]
    if args.test_coco:
        own += ["--test-coco", *map(os.path.abspath, args.test_coco)]
    if args.test_coco:  # registered here too, to read its ground truth for the analysis
        from d2_boxunc.config.own_data import dataset_name
        from d2_boxunc.data import register_coco

        test = dataset_name(*map(os.path.abspath, args.test_coco))
        register_coco(test, *map(os.path.abspath, args.test_coco))
    else:
        test = args.test_dataset or sized_validation_split(args.val_images)
        try:
            prepare_dataset(test)
            prepare_dataset(args.train_dataset)
        except KeyError as e:
            raise SystemExit(f"study: error: {str(e).strip(chr(34) + chr(39))}") from None
    out = os.path.abspath(args.output)
    os.makedirs(out, exist_ok=True)
    settings = Settings(
        max_iter=args.max_iter,
        train_dataset=args.train_dataset,
        test_dataset=test,
        extra=(*backbone_overrides(args.backbone_dtype), *args.opts),
        own_data=tuple(own),
    )
    methods = [METHODS[n] for n in names]
    seeds = list(range(args.seeds))
    steps = plan_steps(methods, seeds, out, settings)
    t0 = time.time()
    if not args.analyse_only:
        counts = run_steps(steps, jobs=args.jobs)
        print(
            f"[study] {counts['ran']} runs, {counts['cached']} cached, {counts['minutes']:.1f} min",
            flush=True,
        )
    from .ranking_hunt import probe_study_runs

    probe_study_runs(
        [s.out for s in steps if s.after is None and METHODS[s.row].ranking_probe and s.done()]
    )
    run_minutes = (time.time() - t0) / 60

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(MetadataCatalog.get(test).json_file)
    runs = {}
    for s in steps:
        if os.path.isfile(os.path.join(s.out, "coco_instances_results.json")):
            runs[(s.row, s.seed)] = load_run(coco_gt, s.out)
    if not runs:
        raise SystemExit(f"study: error: no evaluated runs in {out}")
    print(
        f"[study] analysing {len(runs)} evaluated runs ({args.resamples} bootstrap resamples)",
        flush=True,
    )
    analysis = Analysis(runs, n_resamples=args.resamples)
    analysis.precompute(jobs=args.jobs)
    labels = {m.name: m.label for m in methods}
    labels.update({f"{m.name}/{v.name}": v.label for m in methods for v in m.variants})
    header = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "methods": names,
        "seeds": len(seeds),
        "max_iter": args.max_iter,
        "iterations": {m.name: m.max_iter(args.max_iter) for m in methods},
        "train_dataset": args.train_dataset if not args.train_coco else args.train_coco[0],
        "test_dataset": test,
        "val_images": analysis.num_images,
        "bootstrap_resamples": args.resamples,
        "backbone_dtype": args.backbone_dtype,
        "overrides": list(args.opts),
        "run_minutes": round(run_minutes, 1),
    }
    results = write_report(analysis, out, header, labels)
    print(open(os.path.join(out, "report.md")).read())
    print(
        f"[study] wrote {out}/results.json and report.md ({(time.time() - t0) / 60:.1f} min in all)"
    )
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
