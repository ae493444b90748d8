"""Runs the study's trainings and evaluations as ``train_net.py`` subprocesses, cached.

Each (method, seed) trains once into ``OUT/runs/<method>/s<seed>/`` (its final evaluation is the
method's own row) and then evaluates each variant into ``.../eval_<variant>/``: the variants of
one checkpoint in one process (:mod:`.eval_variants`), sharing the backbone and proposals where
they differ only in the ROI heads.  A step is skipped
when its folder holds a ``study_key.json`` equal to the step's key (config, overrides, seed, and
the study settings) and its outputs; so a rerun trains only what changed, and an interrupted study
resumes.  Steps run ``jobs`` at a time, one torch thread each; the console shows a progress bar
with an ETA.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from ..model_zoo import get_config_file
from .plan import Method, Variant
from .progress import EVAL_ITERS, RunProgress

__all__ = ["Settings", "Step", "plan_steps", "run_steps"]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_NET = os.path.join(REPO, "train_net.py")


@dataclass(frozen=True)
class Settings:
    """Everything about a study run that changes its checkpoints or evaluations."""

    max_iter: int
    train_dataset: str
    test_dataset: str
    extra: tuple[str, ...] = ()  # global overrides (e.g. the regime's, or the user's)
    own_data: tuple[str, ...] = ()  # --train-coco/--test-coco arguments, passed through


@dataclass
class Step:
    """One ``train_net.py`` invocation of the study."""

    row: str  # "method" or "method/variant"
    seed: int
    out: str
    args: list[str]
    key: dict
    after: Step | None = None  # the training step an evaluation needs
    weight: int = EVAL_ITERS  # cost for the progress bar, in training iterations

    def done(self) -> bool:
        path = os.path.join(self.out, "study_key.json")
        if not os.path.isfile(path) or not os.path.isfile(
            os.path.join(self.out, "eval_results.json")
        ):
            return False
        try:
            with open(path) as f:
                return json.load(f) == self.key
        except (OSError, ValueError):
            return False


def _data_overrides(settings: Settings) -> list[str]:
    if settings.own_data:
        return []  # --train-coco / --test-coco set datasets and evaluator
    return [
        f"dataloader.train.dataset.names={settings.train_dataset}",
        f"dataloader.test.dataset.names={settings.test_dataset}",  # the evaluators follow it
    ]


def plan_steps(
    methods: list[Method], seeds: list[int], root: str, settings: Settings
) -> list[Step]:
    """Training and evaluation steps for every method and seed, seed by seed (a study stopped
    early holds whole seeds)."""
    steps = []
    for seed in seeds:
        for m in methods:
            run = os.path.join(root, "runs", m.name, f"s{seed}")
            max_iter = m.max_iter(settings.max_iter)
            common = [
                "--synthetic",
                *settings.own_data,
                f"train.max_iter={max_iter}",
                *_data_overrides(settings),
                *settings.extra,
                *m.overrides,
            ]
            train_args = [
                "--config-file",
                get_config_file(m.config),
                *common,
                f"+train.seed={seed}",
                f"train.output_dir={run}",
                f"train.checkpointer.period={max_iter}",
                f"train.log_period={max(1, min(50, max_iter // 10))}",
            ]
            key = {"config": m.config, "args": common, "seed": seed}
            train = Step(m.name, seed, run, train_args, key, weight=max_iter + EVAL_ITERS)
            steps.append(train)
            for v in m.variants:
                steps.append(_variant_step(m, v, seed, run, common, train))
    return steps


def _variant_step(m: Method, v: Variant, seed: int, run: str, common: list[str], train: Step):
    out = os.path.join(run, f"eval_{v.name}")
    config = v.config or m.config
    args = [
        "--config-file",
        get_config_file(config),
        "--eval-only",
        *common,
        *v.overrides,
        f"train.init_checkpoint={os.path.join(run, 'model_final.pth')}",
        f"train.output_dir={out}",
    ]
    key = {"config": config, "args": [*common, *v.overrides], "seed": seed, "trained": train.key}
    return Step(f"{m.name}/{v.name}", seed, out, args, key, after=train)


def _run_logged(name: str, cmd: list[str], log_path: str, threads: int) -> None:
    """Run ``python cmd`` with ``threads`` torch threads, its output in ``log_path``; a failure
    raises ``RuntimeError`` naming ``name`` with the log's last lines."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(log_path, "w") as f:
        proc = subprocess.run(
            [sys.executable, *cmd], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=REPO
        )
    if proc.returncode != 0:
        with open(log_path) as f:
            tail = "".join(f.readlines()[-20:])
        raise RuntimeError(f"{name} failed (log: {log_path}):\n{tail}")


def run_train_net(args: list[str], log_path: str, threads: int = 1) -> None:
    """Run ``train_net.py args`` in a subprocess with ``threads`` torch threads, its output in
    ``log_path``; a failure raises ``RuntimeError`` with the log's last lines (study and demo)."""
    _run_logged("train_net.py", [TRAIN_NET, *args], log_path, threads)


def _forget_key(step: Step) -> None:
    """Create the step's folder and remove its key: a stale key must not vouch for a folder this
    step is about to overwrite (if it is stopped halfway, the next study would otherwise take the
    mixed folder for the old run)."""
    os.makedirs(step.out, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(step.out, "study_key.json"))


def _record_key(step: Step) -> None:
    """Write the step's key once its outputs are complete (what :meth:`Step.done` checks)."""
    with open(os.path.join(step.out, "study_key.json"), "w") as f:
        json.dump(step.key, f, indent=1)


def _run_one(step: Step, progress: RunProgress) -> None:
    """A training step (its progress counted from its ``metrics.json`` as it goes)."""
    _forget_key(step)
    try:
        with progress.run(step.weight, step.out):
            run_train_net(step.args, os.path.join(step.out, "study.log"))
    except RuntimeError as e:
        raise RuntimeError(f"study: {step.row} seed {step.seed}: {e}") from None
    _record_key(step)
    progress.write(f"[study] done {step.row} seed {step.seed}")


def _run_variants(steps: list[Step], progress: RunProgress) -> None:
    """The eval-only steps of one checkpoint in one ``eval_variants`` process."""
    for step in steps:
        _forget_key(step)
    first = steps[0]
    spec = os.path.join(first.out, "study_variants.json")
    with open(spec, "w") as f:
        json.dump([s.args for s in steps], f, indent=1)
    rows = ", ".join(s.row for s in steps)
    try:
        with progress.run(sum(s.weight for s in steps)):
            _run_logged(
                "eval_variants",
                ["-m", "d2_boxunc.study.eval_variants", spec],
                os.path.join(first.out, "study.log"),
                threads=1,
            )
    except RuntimeError as e:
        raise RuntimeError(f"study: {rows} seed {first.seed}: {e}") from None
    for step in steps:
        _record_key(step)
    progress.write(f"[study] done {rows} seed {first.seed}")


def run_steps(steps: list[Step], jobs: int = 2) -> dict:
    """Run the steps not already done, ``jobs`` at a time.

    A worker takes the ready evaluations of one checkpoint (its training done) before the next
    training, so results arrive seed by seed; they run as one process (:func:`_run_variants`).  Returns ``{"cached": n, "ran": n, "minutes": m}``.
    """
    todo = [s for s in steps if not s.done()]
    cached = len(steps) - len(todo)
    progress = RunProgress(sum(s.weight for s in todo), "study")
    cond = threading.Condition()
    finished = {id(s) for s in steps if s not in todo}
    failed: set[int] = set()
    pending = list(todo)
    errors: list[Exception] = []
    t0 = time.time()

    def take() -> list[Step]:
        with cond:
            while pending:
                ready = [
                    s for s in pending if s.after is not None and id(s.after) in finished | failed
                ]
                if ready:  # every ready evaluation of the first one's checkpoint
                    group = [s for s in ready if s.after is ready[0].after]
                else:
                    group = [s for s in pending if s.after is None][:1]
                if group:
                    for s in group:
                        pending.remove(s)
                    return group
                cond.wait()  # only evaluations of running trainings are left
            return []

    def worker() -> None:
        while group := take():
            first = group[0]
            ok = False
            try:
                if first.after is None:
                    _run_one(first, progress)
                elif id(first.after) in failed:
                    raise RuntimeError(f"study: {first.row} seed {first.seed}: its training failed")
                else:
                    _run_variants(group, progress)
                ok = True
            except Exception as e:  # keep the other runs going; report every failure at the end
                errors.append(e)
            with cond:
                for s in group:
                    (finished if ok else failed).add(id(s))
                cond.notify_all()

    threads = [threading.Thread(target=worker) for _ in range(max(1, jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    progress.close()
    if errors:
        raise RuntimeError("\n".join(str(e) for e in errors))
    return {"cached": cached, "ran": len(todo), "minutes": (time.time() - t0) / 60}
