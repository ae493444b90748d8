"""``make gpu-check``: the first thing to run on a machine with a GPU (docs/gpu.md#gpu-check).

One command that
  1. builds d2_boxunc._C with its CUDA kernels (``FORCE_CUDA=1 setup.py build_ext --inplace``,
     skipped when the loaded build already has them),
  2. runs every ``needs_cuda`` test,
  3. compares every op's CUDA outputs and gradients with its CPU op (and with the CUDA kernels'
     bodies run on the CPU by the ``_*_gridcpu`` test ops) on random and edge-case inputs,
  4. times the ops on the GPU against torchvision (PrRoIPool vs roi_align, IoU-guided NMS vs nms,
     soft-NMS and KL-NMS per image with their host round-trip, aLRP training iteration vs focal),
  5. trains each method's synthetic config for 20 AMP iterations on the GPU (finite losses),
and prints one summary table. Exit status 0 when every step passed. Without a GPU it prints
``skipped: no GPU`` and exits 0. Budget: about 10 minutes on one H100 (each step has a timeout).

    python dev/gpu_check.py [--skip-build] [--only STEP ...]
    python dev/gpu_check.py --step compare|bench      # one in-process step (used by the above)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = ("build", "tests", "compare", "bench", "amp")
TIMEOUT_S = {"build": 240, "tests": 150, "compare": 60, "bench": 120, "amp": 300}
AMP_ITERS = 20


def _run(cmd: list[str], timeout: float, env: dict | None = None) -> tuple[bool, str, float]:
    """Runs cmd in ROOT; (passed, last output lines, seconds)."""
    t0 = time.time()
    try:
        proc = subprocess.run(
            cmd,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        out, ok = proc.stdout, proc.returncode == 0
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += f"\ntimed out after {timeout:.0f} s"
        ok = False
    return ok, out, time.time() - t0


def _last(out: str, n: int = 1) -> str:
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[-160:] if lines else ""


# ------------------------------------------------------------------------------------ steps
def step_build() -> tuple[bool, str]:
    probe = "from d2_boxunc import _extension as e; print(e.cuda_version())"
    ok, out, _ = _run([sys.executable, "-c", probe], 60)
    if ok and out.strip().splitlines()[-1] not in ("-1", ""):
        return True, f"already built with CUDA {out.strip().splitlines()[-1]}"
    jobs = str(max(1, min(16, os.cpu_count() or 1)))
    ok, out, _ = _run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        TIMEOUT_S["build"],
        env={"FORCE_CUDA": "1", "MAX_JOBS": os.environ.get("MAX_JOBS", jobs)},
    )
    if not ok:
        return False, _last(out, 3)
    ok, out, _ = _run([sys.executable, "-c", probe], 60)
    version = out.strip().splitlines()[-1] if ok and out.strip() else "?"
    return ok and version != "-1", f"built, cuda_version() = {version}"


def step_tests() -> tuple[bool, str]:
    ok, out, _ = _run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "needs_cuda",
            "tests",
        ],
        TIMEOUT_S["tests"],
    )
    return ok, _last(out)


def step_amp() -> list[tuple[str, bool, float, str]]:
    from d2_boxunc.demo import METHODS

    rows = []
    budget_end = time.time() + TIMEOUT_S["amp"]
    with tempfile.TemporaryDirectory(prefix="d2b-gpu-check-") as tmp:
        for name, method in METHODS.items():
            left = budget_end - time.time()
            if left < 10:
                rows.append((f"amp {name}", False, 0.0, "not run: step budget spent"))
                continue
            out_dir = os.path.join(tmp, name)
            args = [
                sys.executable,
                "train_net.py",
                "--config-file",
                method.config,
                "--synthetic",
                "train.device=cuda",
                "train.amp.enabled=True",
                f"train.max_iter={AMP_ITERS}",
                "train.log_period=5",
                f"train.output_dir={out_dir}",
                *method.overrides,
            ]
            ok, out, secs = _run(args, left)
            detail = _last(out)
            if ok:
                losses = _final_losses(out_dir)
                finite = bool(losses) and all(math.isfinite(v) for v in losses.values())
                ok = finite
                total = losses.get("total_loss", float("nan"))
                detail = f"total_loss {total:.3f} at iter {AMP_ITERS}" + (
                    "" if finite else f"; non-finite: {losses}"
                )
            rows.append((f"amp {name}", ok, secs, detail))
    return rows


def _final_losses(out_dir: str) -> dict:
    path = os.path.join(out_dir, "metrics.json")
    if not os.path.exists(path):
        return {}
    last = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if "total_loss" in rec:
                last = rec
    return {k: float(v) for k, v in last.items() if "loss" in k}


# --------------------------------------------------------------- in-process: op comparisons
def compare(dev: str = "cuda") -> list[tuple[str, bool, str]]:
    """Each op on CUDA vs its CPU op (and vs the CUDA bodies run on the CPU). ``dev="cpu"`` runs
    the same code CPU against CPU: a smoke test of this script without a GPU."""
    import torch

    import d2_boxunc  # noqa: F401
    from d2_boxunc.layers import (
        batched_diou_nms,
        batched_iou_guided_nms,
        batched_kl_nms,
        batched_soft_nms,
        var_voting,
    )

    ops = torch.ops.d2_boxunc
    rows = []

    def close(a, b, rtol, atol):
        a, b = a.detach().cpu(), b.detach().cpu()
        if a.shape != b.shape:
            return False, f"shape {tuple(a.shape)} vs {tuple(b.shape)}"
        if a.numel() == 0:
            return True, "empty"
        diff = (a.double() - b.double()).abs().max().item()
        return torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol), f"max|d| {diff:.2e}"

    def add(name, ok_detail):
        rows.append((name, *ok_detail))

    g = torch.Generator().manual_seed(0)
    edge_rois = [
        [0, 2.3, 1.7, 9.9, 8.1],
        [1, -3.1, -2.3, 5.3, 4.9],
        [0, 50.1, 41.3, 70.7, 77.3],
        [1, 4.3, 4.1, 5.1, 4.7],
        [0, 3.0, 3.0, 3.0, 7.0],
        [1, 8.0, 2.0, 4.0, 6.0],
        [0, float("nan"), 1, 5, 5],
        [2, 1.0, 1.0, 5.0, 5.0],
    ]
    for dtype, rtol, atol in ((torch.float32, 1e-4, 1e-4), (torch.float64, 1e-9, 1e-10)):
        for layout in ("nchw", "channels_last"):
            x = torch.randn(2, 16, 40, 36, generator=g, dtype=torch.float64).to(dtype)
            xy = torch.rand(300, 2, generator=g, dtype=torch.float64) * 140 - 10
            wh = torch.rand(300, 2, generator=g, dtype=torch.float64) * 60 + 1
            b = torch.randint(0, 2, (300, 1), generator=g).double()
            rois = torch.cat([torch.cat([b, xy, xy + wh], 1), torch.tensor(edge_rois)]).to(dtype)
            if layout == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            args = (0.25, 7, 7, True)
            res = {}
            for side in ("cpu", "cuda"):
                xd = x.to("cpu" if side == "cpu" else dev).requires_grad_()
                rd = rois.to(xd.device).requires_grad_()
                out = ops.prroi_pool(xd, rd, *args)
                grad = torch.linspace(-1, 1, out.numel(), dtype=dtype).reshape(out.shape)
                out.backward(grad.to(xd.device))
                res[side] = (out, xd.grad, rd.grad)
            tag = f"prroi_pool {str(dtype)[6:]} {layout}"
            for k, what in enumerate(("out", "d input", "d rois")):
                add(f"{tag} {what}", close(res["cuda"][k], res["cpu"][k], rtol, atol))
            grid = ops._prroi_pool_forward_gridcpu(x, rois, *args)
            add(f"{tag} vs grid-CPU bodies", close(res["cuda"][0], grid, rtol, atol))
    # NMS family: same keep lists, close scores / boxes
    n = 3000
    ctr = torch.rand(n // 10, 2, generator=g) * 800
    c = ctr[torch.randint(0, len(ctr), (n,), generator=g)] + torch.randn(n, 2, generator=g) * 8
    wh = torch.rand(n, 2, generator=g) * 80 + 10
    boxes = torch.cat([c - wh / 2, c + wh / 2], 1)
    scores, ious = torch.rand(n, generator=g), torch.rand(n, generator=g)
    cls = torch.randint(0, 5, (n,), generator=g)
    log_vars = torch.randn(n, 4, generator=g) - 2

    def both(fn, *a, **kw):
        cpu = fn(*a, **kw)
        cuda = fn(*(t.to(dev) if isinstance(t, torch.Tensor) else t for t in a), **kw)
        return cpu, cuda

    for name, fn, a, kw in (
        ("iou_guided_nms", batched_iou_guided_nms, (boxes, scores, ious, cls, 0.5), {}),
        ("soft_nms", batched_soft_nms, (boxes, scores, cls), {}),
        ("kl_nms", batched_kl_nms, (boxes, scores, log_vars, cls), {"soft": True}),
        ("diou_nms", lambda *t: (batched_diou_nms(*t),), (boxes, scores, cls, 0.5), {}),
    ):
        cpu, cuda = both(fn, *a, **kw)
        on_cuda = all(t.device.type == dev for t in cuda)
        same_keep = torch.equal(cpu[0], cuda[0].cpu())
        ok, detail = close(cuda[-1], cpu[-1], 1e-5, 1e-6)
        add(
            f"{name} (batched)",
            (ok and same_keep and on_cuda, f"keep equal {same_keep}, cuda out {on_cuda}, {detail}"),
        )
    keep = batched_diou_nms(boxes.to(dev), scores.to(dev), cls.to(dev), 0.5)
    add(
        "diou_nms vs grid-CPU bodies",
        close(keep, ops._diou_nms_gridcpu(boxes, scores, cls, 0.5), 0, 0),
    )
    cpu, cuda = both(var_voting, boxes[:200], boxes, log_vars.exp())
    add("var_voting", close(cuda, cpu, 1e-5, 1e-4))
    add(
        "var_voting vs grid-CPU bodies",
        close(
            cuda, ops._var_voting_gridcpu(boxes[:200], boxes, log_vars.exp(), 0.02, 0.0), 1e-5, 1e-4
        ),
    )
    # aLRP band kernels (shared-memory and global-memory histograms)
    for num_pos in (50, 2000):
        u = torch.randn(num_pos, generator=g, dtype=torch.float64)
        e = torch.sort(torch.cat([u - 1, u + 1])).values.float()
        v = torch.randn(1_000_000, generator=g) * 2
        y = (torch.rand(v.numel(), generator=g) < 0.01).to(torch.uint8)
        cpu = ops.alrp_band_stats(v, y, e)
        cuda = ops.alrp_band_stats(v.to(dev), y.to(dev), e.to(dev))
        tag = "shared" if 2 * num_pos + 2 <= 2048 else "global"
        add(f"alrp_band_stats ({tag} histogram) count", close(cuda[0], cpu[0], 0, 0))
        add(f"alrp_band_stats ({tag} histogram) sum", close(cuda[1], cpu[1], 1e-9, 1e-6))
        off = torch.randn(e.numel() + 1, generator=g, dtype=torch.float64)
        slope = torch.randn(e.numel() + 1, generator=g, dtype=torch.float64)
        gc = ops.alrp_band_grad(v, y, e, off, slope)
        gg = ops.alrp_band_grad(v.to(dev), y.to(dev), e.to(dev), off.to(dev), slope.to(dev))
        add(f"alrp_band_grad ({tag})", close(gg, gc, 1e-6, 1e-6))
    return rows


# -------------------------------------------------------------------- in-process: timings
def bench(dev: str = "cuda", scale: int = 1) -> list[tuple[str, bool, str]]:
    """GPU timings. ``dev="cpu"`` with ``scale`` > 1 (sizes divided by it) is a smoke test of this
    code without a GPU."""
    import torch
    from torchvision.ops import nms, roi_align

    import d2_boxunc  # noqa: F401
    from d2_boxunc.layers import (
        batched_kl_nms,
        batched_soft_nms,
        diou_nms,
        iou_guided_nms,
        prroi_pool,
    )

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    def cuda_ms(fn, reps=20):
        reps = max(1, reps // scale)
        fn()
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        return (time.perf_counter() - t0) / reps * 1e3

    rows = []
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 256 // scale, 200, 272, generator=g).to(dev).requires_grad_()
    k = 512 // scale
    xy = torch.rand(k, 2, generator=g) * 900
    wh = torch.rand(k, 2, generator=g) * 100 + 32
    b = torch.randint(0, 2, (k, 1), generator=g).float()
    rois = torch.cat([b, xy, xy + wh], 1).to(dev).requires_grad_()

    def prroi_fb():
        prroi_pool(x, rois, 7, 0.25).sum().backward()

    def align_fb():
        roi_align(x, rois, 7, 0.25, 2, True).sum().backward()

    with torch.no_grad():
        p = cuda_ms(lambda: prroi_pool(x, rois, 7, 0.25))
        a = cuda_ms(lambda: roi_align(x, rois, 7, 0.25, 2, True))
    rows.append(("PrRoIPool fwd vs roi_align", True, f"{p:.2f} ms vs {a:.2f} ms ({p / a:.1f}x)"))
    p, a = cuda_ms(prroi_fb), cuda_ms(align_fb)
    rows.append(
        ("PrRoIPool fwd+bwd vs roi_align", True, f"{p:.2f} ms vs {a:.2f} ms ({p / a:.1f}x)")
    )
    n = 5000 // scale
    ctr = torch.rand(n // 50, 2, generator=g) * torch.tensor([1333.0, 800.0])
    c = ctr[torch.randint(0, len(ctr), (n,), generator=g)] + torch.randn(n, 2, generator=g) * 10
    wh = torch.rand(n, 2, generator=g) * 100 + 16
    boxes = torch.cat([c - wh / 2, c + wh / 2], 1).to(dev)
    scores, ious = torch.rand(n, generator=g).to(dev), torch.rand(n, generator=g).to(dev)
    cls = torch.randint(0, 80, (n,), generator=g).to(dev)
    t_iou = cuda_ms(lambda: iou_guided_nms(boxes, scores, ious, 0.5))
    t_nms = cuda_ms(lambda: nms(boxes, scores, 0.5))
    rows.append((f"IoU-guided NMS vs nms, {n} boxes", True, f"{t_iou:.2f} ms vs {t_nms:.2f} ms"))
    t_diou = cuda_ms(lambda: diou_nms(boxes, scores, 0.5))
    rows.append((f"DIoU-NMS vs nms, {n} boxes", True, f"{t_diou:.2f} ms vs {t_nms:.2f} ms"))
    for k in (1000 // scale, n):
        b, s, c = boxes[:k], scores[:k], cls[:k]
        lv = torch.zeros(k, 4, device=dev) - 2
        t_soft = cuda_ms(lambda b=b, s=s, c=c: batched_soft_nms(b, s, c), reps=5)
        t_kl = cuda_ms(lambda b=b, s=s, lv=lv, c=c: batched_kl_nms(b, s, lv, c), reps=5)
        rows.append(
            (
                f"soft-NMS / KL-NMS per image, {k} boxes",
                True,
                f"{t_soft:.2f} / {t_kl:.2f} ms incl. host round-trip",
            )
        )
    return rows


def bench_alrp() -> tuple[bool, str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "benchmarks/bench_alrp.py", "--device", "cuda", "--iters", "10"]
        ok, out, secs = _run([*cmd, "--output", os.path.join(tmp, "alrp.json")], TIMEOUT_S["bench"])
        detail = _last(out, 2)
        if ok:
            with open(os.path.join(tmp, "alrp.json")) as f:
                detail = json.dumps(json.load(f).get("training", {}))[:160]
    return ok, detail, secs


# ------------------------------------------------------------------------------------ driver
def _inprocess(step: str) -> tuple[bool, list]:
    ok, out, secs = _run([sys.executable, __file__, "--step", step], TIMEOUT_S[step])
    rows = []
    for line in out.splitlines():
        if line.startswith("ROW\t"):
            _, name, passed, detail = line.split("\t", 3)
            rows.append((name, passed == "1", 0.0, detail))
    if not ok:
        rows.append((step, False, secs, _last(out, 2)))
    return ok and all(r[1] for r in rows), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", choices=("compare", "bench"), help=argparse.SUPPRESS)
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--only", nargs="+", choices=STEPS)
    args = parser.parse_args()
    if args.step:  # in a fresh process (after the build): print machine-readable rows
        for name, ok, detail in (compare if args.step == "compare" else bench)():
            print(f"ROW\t{name}\t{int(ok)}\t{detail}", flush=True)
        return 0

    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        print("skipped: no GPU")
        return 0
    print(f"gpu-check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    steps = args.only or [s for s in STEPS if not (s == "build" and args.skip_build)]
    rows: list[tuple[str, bool, float, str]] = []
    t_start = time.time()
    for step in steps:
        t0 = time.time()
        print(f"[gpu-check] {step} ...", flush=True)
        if step == "build":
            ok, detail = step_build()
            rows.append(("build with CUDA", ok, time.time() - t0, detail))
            if not ok:
                break  # nothing else can run
        elif step == "tests":
            ok, detail = step_tests()
            rows.append(("needs_cuda tests", ok, time.time() - t0, detail))
        elif step in ("compare", "bench"):
            _, step_rows = _inprocess(step)
            rows.extend(step_rows)
            if step == "bench":
                ok, detail, secs = bench_alrp()
                rows.append(("aLRP loss + iteration vs focal (bench_alrp.py)", ok, secs, detail))
            rows.append((f"{step} (step total)", True, time.time() - t0, ""))
        elif step == "amp":
            rows.extend(step_amp())
    total = time.time() - t_start
    width = max(len(r[0]) for r in rows) + 2
    print(f"\n{'check':{width}s} {'result':6s} {'s':>6s}  detail")
    for name, ok, secs, detail in rows:
        print(f"{name:{width}s} {'PASS' if ok else 'FAIL':6s} {secs:6.1f}  {detail}")
    failed = sum(not r[1] for r in rows)
    print(f"\n{len(rows) - failed}/{len(rows)} passed in {total:.0f} s")
    record = os.path.join(ROOT, "benchmarks", "results", "gpu_check.json")
    os.makedirs(os.path.dirname(record), exist_ok=True)
    with open(record, "w") as f:  # the record of a GPU run (README: GPU status)
        json.dump(
            {
                "gpu": torch.cuda.get_device_name(0),
                "torch": torch.__version__,
                "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                "seconds": round(total, 1),
                "rows": [
                    dict(check=r[0], passed=r[1], seconds=round(r[2], 1), detail=r[3]) for r in rows
                ],
            },
            f,
            indent=1,
        )
    print(f"wrote {record}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
