"""CPU timings of the compiled NMS-family ops against the Python-loop references and torchvision.

Boxes are clustered like detector output (jittered copies around object centres, uniform scores).
The slow references are timed at growing sizes until one run takes longer than REF_BUDGET_S; larger
sizes are then skipped (shown as "-"). Writes benchmarks/results/bench_nms.json.

    python benchmarks/bench_nms.py [--only NAME_PREFIX ...] [--sizes N ...] [--threads T]
"""

import argparse
import json
import os
import platform
import time

import torch
import torchvision

import d2_boxunc  # noqa: F401
from d2_boxunc.layers import _reference as ref
from d2_boxunc.layers import diou_nms, iou_guided_nms, kl_nms, soft_nms

SIZES = (100, 1000, 5000, 20000)
REF_BUDGET_S = 3.0  # stop timing a reference once a single run exceeds this
MIN_TIME_S = 0.3  # repeat fast calls until this much time has passed (median reported)


def clustered_boxes(n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n_obj = max(n // 50, 1)
    centres = torch.rand(n_obj, 2, generator=g) * torch.tensor([1333.0, 800.0])
    sizes = 20 + torch.rand(n_obj, 2, generator=g) * 180
    obj = torch.randint(0, n_obj, (n,), generator=g)
    ctr = centres[obj] + torch.randn(n, 2, generator=g) * 0.1 * sizes[obj]
    wh = sizes[obj] * (1 + 0.1 * torch.randn(n, 2, generator=g)).clamp(min=0.5)
    boxes = torch.cat([ctr - wh / 2, ctr + wh / 2], dim=1)
    scores = torch.rand(n, generator=g)
    ious = torch.rand(n, generator=g)
    log_vars = torch.randn(n, 4, generator=g) - 3
    return boxes, scores, ious, log_vars


def timeit(fn) -> float:
    fn()  # warm-up
    times, start = [], time.perf_counter()
    while not times or (time.perf_counter() - start < MIN_TIME_S and len(times) < 50):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def cases(boxes, scores, ious, log_vars):
    """name -> (compiled op, Python-loop reference, torchvision baseline or None)."""
    tv_nms = torchvision.ops.nms
    return {
        "soft_nms gaussian": (
            lambda: soft_nms(boxes, scores, "gaussian"),
            lambda: ref.soft_nms(boxes, scores, "gaussian"),
            None,
        ),
        "soft_nms linear": (
            lambda: soft_nms(boxes, scores, "linear"),
            lambda: ref.soft_nms(boxes, scores, "linear"),
            None,
        ),
        "soft_nms hard (iou 0.5)": (
            lambda: soft_nms(boxes, scores, "hard", iou_threshold=0.5),
            lambda: ref.soft_nms(boxes, scores, "hard", iou_threshold=0.5),
            lambda: tv_nms(boxes, scores, 0.5),
        ),
        "iou_guided_nms (iou 0.5)": (
            lambda: iou_guided_nms(boxes, scores, ious, 0.5),
            lambda: ref.iou_guided_nms(boxes, scores, ious, 0.5),
            lambda: tv_nms(boxes, ious, 0.5),
        ),
        "diou_nms (0.5)": (
            lambda: (diou_nms(boxes, scores, 0.5),),
            lambda: ref.diou_nms(boxes, scores, 0.5),
            lambda: tv_nms(boxes, scores, 0.5),
        ),
        "kl_nms hard + voting": (
            lambda: kl_nms(boxes, scores, log_vars),
            lambda: ref.kl_nms(boxes, scores, log_vars),
            None,
        ),
        "kl_nms soft + voting": (
            lambda: kl_nms(boxes, scores, log_vars, soft=True),
            lambda: ref.kl_nms(boxes, scores, log_vars, soft=True),
            None,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", default=[], help="ops whose name starts so")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows, ref_exhausted = [], set()
    for n in args.sizes:
        for name, (op, slow, tv) in cases(*clustered_boxes(n)).items():
            if args.only and not name.startswith(tuple(args.only)):
                continue
            row = {"op": name, "n": n, "kept": len(op()[0]), "op_s": timeit(op)}
            if name not in ref_exhausted:
                t0 = time.perf_counter()
                slow()
                single = time.perf_counter() - t0
                row["ref_s"] = single if single > REF_BUDGET_S / 3 else timeit(slow)
                if single > REF_BUDGET_S:
                    ref_exhausted.add(name)
            if tv is not None:
                row["torchvision_nms_s"] = timeit(tv)
            if not rows:
                print(HEADER)
            rows.append(row)
            print_row(row)
    os.makedirs(os.path.join(os.path.dirname(__file__), "results"), exist_ok=True)
    out = os.path.join(os.path.dirname(__file__), "results", "bench_nms.json")
    meta = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "ref_budget_s": REF_BUDGET_S,
    }
    with open(out, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(f"\nwrote {out}")


HEADER = (
    f"{'op':<26}{'n':>7}{'kept':>7}{'op ms':>10}{'ref ms':>11}{'ref/op':>9}"
    f"{'tv nms ms':>11}{'op/tv':>8}"
)


def print_row(row: dict) -> None:
    ref_ms = f"{row['ref_s'] * 1e3:11.2f}" if "ref_s" in row else f"{'-':>11}"
    speedup = f"{row['ref_s'] / row['op_s']:8.0f}x" if "ref_s" in row else f"{'-':>9}"
    tv = row.get("torchvision_nms_s")
    tv_ms = f"{tv * 1e3:11.3f}" if tv else f"{'':>11}"
    ratio = f"{row['op_s'] / tv:7.2f}x" if tv else ""
    print(
        f"{row['op']:<26}{row['n']:>7}{row['kept']:>7}{row['op_s'] * 1e3:10.3f}"
        f"{ref_ms}{speedup}{tv_ms}{ratio}"
    )


if __name__ == "__main__":
    main()
