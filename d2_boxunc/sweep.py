"""Hyper-parameter sweeps over LazyConfig keys: one ``train_net.py`` run per grid point.

    python -m d2_boxunc.sweep --config-file configs/KLLoss/kl_faster_rcnn_R_50_FPN_2x_varvote.py \\
        --eval-only --grid "model.roi_heads.box_predictor.sigma_t=[0.005,0.01,0.02,0.04]" \\
        --output output/sweeps/kl_sigma_t train.init_checkpoint=output/kl/model_final.pth
    python -m d2_boxunc.sweep --sweep-file configs/sweeps/kl_sigma_t.yaml --synthetic \\
        --test-dataset boxunc_synth_val_tiny

Every ``--grid KEY=[v1,v2,...]`` adds an axis (the points are their Cartesian product); values are
YAML scalars and reach ``train_net.py`` as detectron2 ``key=value`` overrides.  Points run one after
the other in subprocesses, each in ``OUTPUT/points/<key>_<value>[__...]/``; a point whose
``eval_results.json`` exists is skipped, so re-running an interrupted sweep resumes it.  At the
end ``OUTPUT/results.csv`` and ``results.md`` hold one row per point (AP, oLRP and box-uncertainty
metrics found in its ``eval_results.json``) and ``results.png`` plots them against the first key.

``--train-coco JSON IMAGE_DIR`` / ``--test-coco JSON IMAGE_DIR`` (your own COCO-format data) are
passed on to every point's ``train_net.py``.

A sweep file (YAML) may set ``config_file``, ``eval_only``, ``synthetic``, ``grid`` (mapping of
key to list of values), ``overrides`` (list of ``key=value``) and ``metrics``; command-line flags
add to or replace them.  Config and sweep files are paths or model-zoo names
(``KLLoss/kl_faster_rcnn_R_50_FPN_2x_varvote.py``, ``sweeps/kl_sigma_t.yaml``;
:mod:`d2_boxunc.model_zoo`).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import re
import subprocess
import sys
import time

import yaml

from d2_boxunc.config.cli import add_own_data_arguments

__all__ = ["SweepPoint", "collect", "expand_grid", "main", "parse_grid", "run_sweep"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_NET = os.path.join(ROOT, "train_net.py")
DEFAULT_METRICS = (
    "bbox/AP",
    "bbox/AP50",
    "bbox/AP75",
    "lrp/oLRP",
    "lrp/oLRP_loc",
    "lrp/oLRP_FP",
    "lrp/oLRP_FN",
    "box_uncertainty/NLL",
    "box_uncertainty/interval_ECE",
    "box_uncertainty/sigma_err_spearman",
    "box_uncertainty/iou_spearman",
    "box_uncertainty/score_iou_spearman",
)


class SweepError(ValueError):
    """A malformed grid, sweep file or command line."""


def parse_grid(spec: str) -> tuple[str, list]:
    """``"a.b=[1,2]"`` -> ``("a.b", [1, 2])``; a single value ``"a.b=3"`` gives ``[3]``."""
    key, sep, values = spec.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise SweepError(f"grid '{spec}' is not of the form key=[v1,v2,...]")
    try:
        parsed = yaml.safe_load(values)
    except yaml.YAMLError as e:
        raise SweepError(f"grid '{spec}': cannot parse the values ({e})") from None
    parsed = parsed if isinstance(parsed, list) else [parsed]
    if not parsed:
        raise SweepError(f"grid '{spec}' has no values")
    if len(set(map(repr, parsed))) != len(parsed):
        raise SweepError(f"grid '{spec}' repeats a value")
    return key, parsed


def _format_value(v) -> str:
    return v if isinstance(v, str) else repr(v)


class SweepPoint:
    """One combination of grid values, with its override strings and folder name."""

    def __init__(self, params: dict):
        self.params = dict(params)

    @property
    def overrides(self) -> list[str]:
        return [f"{k}={_format_value(v)}" for k, v in self.params.items()]

    def name(self, short_keys: dict[str, str]) -> str:
        # no '=' or ',': the folder reaches train_net.py inside a (hydra-parsed) override
        parts = [f"{short_keys[k]}_{_format_value(v)}" for k, v in self.params.items()]
        return re.sub(r"[^A-Za-z0-9_.-]", "_", "__".join(parts))


def expand_grid(grid: dict[str, list]) -> list[SweepPoint]:
    """The Cartesian product of the grid, first key varying slowest."""
    keys = list(grid)
    return [SweepPoint(dict(zip(keys, combo))) for combo in itertools.product(*grid.values())]


def _short_keys(keys) -> dict[str, str]:
    short = {k: k.split(".")[-1] for k in keys}
    if len(set(short.values())) < len(short):
        return {k: k for k in keys}
    return short


def _flatten(results: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in results.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def run_sweep(
    config_file: str,
    grid: dict[str, list],
    output: str,
    *,
    eval_only: bool = False,
    synthetic: bool = False,
    train_coco=None,
    test_coco=None,
    overrides=(),
    num_gpus: int = 1,
    train_net: str = TRAIN_NET,
    dry_run: bool = False,
    log=print,
) -> list[dict]:
    """Run (or resume) every grid point; returns one record per point (params, folder, status).

    ``train_coco`` / ``test_coco``: ``(json_file, image_dir)`` or None, passed on as
    ``--train-coco`` / ``--test-coco``.
    """
    if not grid:
        raise SweepError("the sweep has no grid (give --grid key=[...] or a sweep file)")
    if not os.path.isfile(config_file):
        raise SweepError(f"config file not found: {config_file}")
    points = expand_grid(grid)
    short = _short_keys(grid)
    records = []
    for i, point in enumerate(points):
        folder = os.path.join(output, "points", point.name(short))
        done = os.path.isfile(os.path.join(folder, "eval_results.json"))
        record = {"params": point.params, "folder": folder, "status": "done" if done else "pending"}
        records.append(record)
        tag = f"[{i + 1}/{len(points)}] {point.name(short)}"
        if done:
            log(f"{tag}: eval_results.json exists, skipped")
            continue
        cmd = [sys.executable, train_net, "--config-file", config_file, "--num-gpus", str(num_gpus)]
        cmd += ["--eval-only"] if eval_only else []
        cmd += ["--synthetic"] if synthetic else []
        for flag, files in (("--train-coco", train_coco), ("--test-coco", test_coco)):
            cmd += [flag, *map(os.path.abspath, files)] if files else []
        cmd += [*overrides, *point.overrides, f"train.output_dir={folder}"]
        if dry_run:
            log(f"{tag}: " + " ".join(cmd))
            continue
        os.makedirs(folder, exist_ok=True)
        start = time.time()
        with open(os.path.join(folder, "stdout.txt"), "w") as f:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
        ok = rc == 0 and os.path.isfile(os.path.join(folder, "eval_results.json"))
        record["status"] = "done" if ok else f"failed (exit {rc})"
        log(f"{tag}: {record['status']} in {time.time() - start:.0f}s ({folder}/stdout.txt)")
    return records


def collect(records: list[dict], metrics=DEFAULT_METRICS) -> tuple[list[str], list[list]]:
    """Table of the points: the grid keys, then each metric found in any point, then status."""
    keys = list(records[0]["params"]) if records else []
    flat = []
    for r in records:
        path = os.path.join(r["folder"], "eval_results.json")
        if os.path.isfile(path):
            with open(path) as f:
                flat.append(_flatten(json.load(f)))
        else:
            flat.append({})
    present = [m for m in metrics if any(m in f for f in flat)]
    header = keys + present + ["status"]
    rows = [
        [r["params"][k] for k in keys] + [f.get(m, float("nan")) for m in present] + [r["status"]]
        for r, f in zip(records, flat)
    ]
    return header, rows


def write_tables(header: list[str], rows: list[list], output: str) -> tuple[str, str]:
    from tabulate import tabulate

    os.makedirs(output, exist_ok=True)
    csv_path, md_path = os.path.join(output, "results.csv"), os.path.join(output, "results.md")
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    with open(md_path, "w") as f:
        f.write(tabulate(rows, headers=header, tablefmt="pipe", floatfmt=".3f") + "\n")
    return csv_path, md_path


def plot(header: list[str], rows: list[list], num_keys: int, path: str) -> None:
    """Each metric (one panel per metric group) against the first grid key; one line per
    combination of the other keys."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    metric_cols = [i for i in range(num_keys, len(header) - 1)]
    groups: dict[str, list[int]] = {}
    for i in metric_cols:
        groups.setdefault(header[i].split("/")[0], []).append(i)
    if not groups:
        return
    xs = [r[0] for r in rows]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
    positive = numeric and all(x > 0 for x in xs)
    cats = list(dict.fromkeys(map(str, xs)))
    fig, axes = plt.subplots(
        1, len(groups), figsize=(4.5 * len(groups), 3.6), dpi=100, squeeze=False
    )
    for ax, (group, cols) in zip(axes[0], groups.items()):
        for rest in dict.fromkeys(tuple(r[1:num_keys]) for r in rows):
            sel = sorted(
                (r for r in rows if tuple(r[1:num_keys]) == rest),
                key=lambda r: r[0] if numeric else cats.index(str(r[0])),
            )
            x = [r[0] if numeric else cats.index(str(r[0])) for r in sel]
            for c in cols:
                y = [r[c] if isinstance(r[c], (int, float)) else math.nan for r in sel]
                label = header[c].split("/", 1)[-1]
                if rest:
                    label += " (" + ", ".join(map(str, rest)) + ")"
                ax.plot(x, y, "o-", label=label)
        if positive and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(cats)), cats)
        ax.set_xlabel(header[0].split(".")[-1])
        ax.set_title(group)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _find(path: str) -> str:
    """``path`` when it exists, else the model-zoo file of that name; unchanged when neither
    (the caller then reports it missing)."""
    from d2_boxunc.model_zoo import get_config_file

    if os.path.isfile(path):
        return path
    try:
        return get_config_file(path)
    except RuntimeError:
        return path


def _load_sweep_file(path: str) -> dict:
    if not os.path.isfile(path):
        raise SweepError(f"sweep file not found: {path}")
    with open(path) as f:
        spec = yaml.safe_load(f) or {}
    unknown = set(spec) - {
        "config_file",
        "eval_only",
        "synthetic",
        "grid",
        "overrides",
        "metrics",
        "description",
    }
    if unknown:
        raise SweepError(f"{path}: unknown keys {sorted(unknown)}")
    grid = spec.get("grid", {}) or {}
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise SweepError(f"{path}: 'grid' must map each key to a non-empty list of values")
    return spec


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m d2_boxunc.sweep",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config-file", help="LazyConfig file (or config_file in the sweep file)")
    p.add_argument(
        "--sweep-file", help="YAML sweep definition, e.g. configs/sweeps/kl_sigma_t.yaml"
    )
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=[V1,V2]",
        help="an axis of the grid; repeat for more (replaces the sweep file's key)",
    )
    p.add_argument("--eval-only", action="store_true", default=None)
    p.add_argument(
        "--synthetic",
        action="store_true",
        default=None,
        help="CPU-sized runs on the synthetic set (train_net.py --synthetic)",
    )
    p.add_argument(
        "--test-dataset",
        metavar="NAME",
        help="evaluate on this registered dataset (sets dataloader.test.dataset.names, which "
        "the evaluators follow), e.g. boxunc_synth_val_tiny",
    )
    add_own_data_arguments(p)
    p.add_argument("--output", help="sweep folder (default output/sweeps/<sweep or config name>)")
    p.add_argument("--num-gpus", type=int, default=1)
    p.add_argument("--metrics", help="comma-separated task/metric columns (default: AP, oLRP, ...)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="key=value overrides for every point")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        spec = _load_sweep_file(_find(args.sweep_file)) if args.sweep_file else {}
        config_file = args.config_file or spec.get("config_file")
        if not config_file:
            raise SweepError("no --config-file given (nor config_file in the sweep file)")
        config_file = os.path.abspath(_find(config_file))  # sweep files name zoo configs
        grid = {k: list(v) for k, v in (spec.get("grid") or {}).items()}
        for g in args.grid:
            key, values = parse_grid(g)
            grid[key] = values
        overrides = [str(o) for o in spec.get("overrides", []) or []]
        if args.train_coco and not args.test_coco:
            raise SweepError("--train-coco needs --test-coco JSON IMAGE_DIR too")
        if args.test_dataset and args.test_coco:
            raise SweepError("give --test-dataset or --test-coco, not both")
        if args.test_dataset:
            overrides += [f"dataloader.test.dataset.names={args.test_dataset}"]
        overrides += [o for o in args.opts if o != "--"]
        eval_only = args.eval_only if args.eval_only is not None else spec.get("eval_only", False)
        synthetic = args.synthetic if args.synthetic is not None else spec.get("synthetic", False)
        name = os.path.splitext(os.path.basename(args.sweep_file or config_file))[0]
        output = args.output or os.path.join("output", "sweeps", name)
        metrics = (
            args.metrics.split(",")
            if args.metrics
            else spec.get("metrics", None) or DEFAULT_METRICS
        )
        records = run_sweep(
            config_file,
            grid,
            output,
            eval_only=bool(eval_only),
            synthetic=bool(synthetic),
            train_coco=args.train_coco,
            test_coco=args.test_coco,
            overrides=overrides,
            num_gpus=args.num_gpus,
            dry_run=args.dry_run,
        )
    except SweepError as e:
        print(f"d2_boxunc.sweep: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        return 0
    header, rows = collect(records, metrics)
    csv_path, md_path = write_tables(header, rows, output)
    png = os.path.join(output, "results.png")
    plot(header, rows, len(grid), png)
    with open(md_path) as f:
        print(f.read())
    print(f"wrote {csv_path}, {md_path}, {png}")
    failed = [r for r in records if r["status"] != "done"]
    if failed:
        print(f"{len(failed)} point(s) failed; see their stdout.txt", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
