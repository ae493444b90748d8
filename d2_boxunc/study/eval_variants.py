"""Evaluate several eval-only variants of one checkpoint in one process (the study's variants).

    python -m d2_boxunc.study.eval_variants SPEC.json

``SPEC.json`` is a list of ``train_net.py --eval-only`` argument lists, one per variant (config,
``--synthetic`` / own-data flags, ``key=value`` overrides with ``train.init_checkpoint`` and
``train.output_dir``).  Each variant's results land in its own ``train.output_dir`` exactly as
``train_net.py --eval-only`` writes them; variants of an R-CNN that differ only in
``model.roi_heads`` share one backbone and proposal pass per image
(:func:`d2_boxunc.engine.evaluation.evaluate_variants`).
"""

from __future__ import annotations

import argparse
import json
import os

__all__ = ["load_eval_model", "main", "parse_run_args"]


def parse_run_args(args: list[str]) -> argparse.Namespace:
    """A study run's ``train_net.py`` arguments (``--config-file``, ``--eval-only``,
    ``--synthetic``, the own-data flags ``train_net.py`` takes, ``key=value`` overrides)."""
    from ..config.cli import add_own_data_arguments

    parser = add_own_data_arguments(argparse.ArgumentParser(add_help=False))
    parser.add_argument("--config-file", default=None)
    parser.add_argument("--eval-only", action="store_true")
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    return parser.parse_args(args)


def load_eval_model(args: list[str]):
    """(cfg, model) for one variant: its config as ``train_net.py`` loads it, its model in eval
    mode with every weight from ``train.init_checkpoint`` (a key that does not match fails)."""
    from detectron2.config import instantiate

    from ..config.cli import check_datasets, load_config_from_args
    from ..engine import load_weights

    cfg = load_config_from_args(parse_run_args(args))
    check_datasets(cfg, parts=("test",))
    model = instantiate(cfg.model).to(cfg.train.device).eval()
    load_weights(model, cfg.train.init_checkpoint)
    return cfg, model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="JSON list of train_net.py --eval-only argument lists")
    args = parser.parse_args(argv)
    with open(args.spec) as f:
        runs = json.load(f)
    import torch
    from detectron2.utils.logger import setup_logger

    from ..engine.evaluation import evaluate_variants

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    setup_logger(name="detectron2")
    setup_logger(name="d2_boxunc", abbrev_name="d2bu")
    loaded = [load_eval_model(run) for run in runs]
    evaluate_variants([c for c, _ in loaded], [m for _, m in loaded])


if __name__ == "__main__":
    main()
