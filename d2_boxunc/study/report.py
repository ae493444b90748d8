"""``results.json`` and ``report.md`` (tables, claims, plots) of an evidence study."""

from __future__ import annotations

import json
import os

import numpy as np
from tabulate import tabulate

from .analysis import TABLE_METRICS, Analysis
from .metrics import MECHANISM_METRICS, PROBE_METRICS, RunData

__all__ = ["iou_scatter", "write_report"]


def _fmt(entry: dict | None, digits: int = 1) -> str:
    if not entry:
        return "-"
    if entry["n"] > 1:
        return f"{entry['mean']:.{digits}f} ± {entry['sd']:.{digits}f}"
    return f"{entry['mean']:.{digits}f}"


def _interval(d: dict, digits: int = 2) -> str:
    return f"{d['diff']:+.{digits}f} [{d['ci_low']:+.{digits}f}, {d['ci_high']:+.{digits}f}]"


def _forest_plot(comparisons: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [c for c in comparisons if c["metric"] == "AP" and np.isfinite(c["ci_low"])]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    for yi, c in zip(y, rows):
        color = {"higher": "tab:green", "lower": "tab:red"}.get(c["verdict"], "tab:gray")
        ax.plot([c["ci_low"], c["ci_high"]], [yi, yi], color=color, lw=2)
        ax.plot([c["diff"]], [yi], "o", color=color)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, [c["name"] for c in rows], fontsize=8)
    ax.set_xlabel("AP difference (95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def iou_scatter(run: RunData, title: str, path: str) -> bool:
    """IoU-Net's Fig. 2 for one run: predicted IoU and class score vs the true IoU of the
    detections matched at IoU >= 0.5.  False (nothing drawn) without predicted IoUs."""
    if run.pred_iou is None:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True)
    for ax, y, name in (
        (axes[0], run.pred_iou, "predicted IoU"),
        (axes[1], run.tables.pairs.score, "class score"),
    ):
        ax.scatter(run.tables.pairs.iou, y, s=3, alpha=0.4)
        ax.set_xlabel("IoU with ground truth")
        ax.set_ylabel(name)
    fig.suptitle(f"{title}: detections matched at IoU >= 0.5")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _iou_scatter(analysis: Analysis, row: str, path: str) -> bool:
    seeds = analysis.seeds(row)
    if not seeds:
        return False
    return iou_scatter(analysis.runs[(row, seeds[0])], f"{row}, seed {seeds[0]}", path)


def _sigma_reliability(analysis: Analysis, row: str, path: str) -> bool:
    """Binned predicted σ vs the RMS of the actual error (a calibrated σ lies on the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = analysis.seeds(row)
    runs = [analysis.runs[(row, s)] for s in seeds if analysis.runs[(row, s)].sigma is not None]
    if not runs:
        return False
    sigma = np.concatenate([r.sigma.reshape(-1) for r in runs])
    err = np.concatenate([r.abs_error.reshape(-1) for r in runs])
    edges = np.quantile(sigma, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, sigma, side="right") - 1, 0, 9)
    x = [sigma[bins == b].mean() for b in range(10) if (bins == b).any()]
    y = [np.sqrt((err[bins == b] ** 2).mean()) for b in range(10) if (bins == b).any()]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(x, y, "o-", label=row)
    lim = max(max(x), max(y)) * 1.05
    ax.plot([0, lim], [0, lim], "k--", lw=0.8, label="calibrated")
    ax.set_xlabel("predicted σ (px, decile means)")
    ax.set_ylabel("RMS |error| (px)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(analysis: Analysis, out: str, header: dict, labels: dict[str, str]) -> dict:
    """Write ``out/results.json`` and ``out/report.md`` (+ PNG plots); return the results."""
    table = analysis.table()
    claims = analysis.claims()
    comparisons = analysis.comparisons()
    results = {**header, "rows": table, "comparisons": comparisons, "claims": claims}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=float)

    lines = [f"# Evidence study ({header.get('date', '')})", ""]
    lines += [f"- {k}: {v}" for k, v in header.items() if k not in ("date",)]
    lines += ["", "## Box metrics (mean ± sd over seeds; oLRP lower is better)", ""]
    lines.append(
        tabulate(
            [
                [
                    labels.get(e["row"], e["row"]),
                    len(e["seeds"]),
                    *(_fmt(e.get(m)) for m in TABLE_METRICS),
                ]
                for e in table
            ],
            headers=["row", "seeds", *TABLE_METRICS],
            tablefmt="github",
        )
    )
    mechanisms = (*MECHANISM_METRICS, *PROBE_METRICS)
    mech = [e for e in table if any(m in e for m in mechanisms)]
    lines += ["", "## Mechanism metrics (mean ± sd over seeds)", ""]
    lines.append(
        tabulate(
            [
                [labels.get(e["row"], e["row"]), *(_fmt(e.get(m), 3) for m in mechanisms)]
                for e in mech
            ],
            headers=["row", *mechanisms],
            tablefmt="github",
        )
    )
    lines += ["", "## Claims (difference, 95% CI, verdict)", ""]
    lines.append(
        tabulate(
            [
                [
                    c["name"],
                    f"{c['a']} vs {c['b']}",
                    c["metric"],
                    _interval(
                        c,
                        3
                        if "spearman" in c["metric"] or "gap" in c["metric"] or "iou" in c["metric"]
                        else 2,
                    ),
                    c["interval"],
                    c["verdict"],
                    c["source"],
                ]
                for c in claims
            ],
            headers=[
                "claim",
                "rows",
                "metric",
                "diff [95% CI]",
                "interval over",
                "verdict",
                "source",
            ],
            tablefmt="github",
        )
    )
    lines += ["", "## Every comparison (AP, AP75, AP90)", ""]
    lines.append(
        tabulate(
            [
                [c["name"], c["metric"], _interval(c), c["interval"], c["verdict"]]
                for c in comparisons
            ],
            headers=["rows", "metric", "diff [95% CI]", "interval over", "result"],
            tablefmt="github",
        )
    )
    _forest_plot(comparisons, os.path.join(out, "forest_ap.png"))
    plots = ["![AP differences](forest_ap.png)"]
    if _iou_scatter(analysis, "iounet", os.path.join(out, "iou_scatter.png")):
        plots.append("![IoU-Net: predicted IoU and class score vs true IoU](iou_scatter.png)")
    if _sigma_reliability(analysis, "kl", os.path.join(out, "sigma_reliability.png")):
        plots.append("![KL-Loss: sigma reliability](sigma_reliability.png)")
    lines += ["", "## Plots", "", *plots, ""]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(lines))
    return results
