#!/usr/bin/env python
"""Train and evaluate d2_boxunc models from LazyConfig files.

Same shape and flags as detectron2's ``tools/lazyconfig_train_net.py``:

    python train_net.py --config-file configs/Baselines/faster_rcnn_R_50_FPN_1x.py --num-gpus 8
    python train_net.py --config-file KLLoss/kl_faster_rcnn_R_50_FPN_2x.py  # a model-zoo name
    python train_net.py --config-file X.py --eval-only train.init_checkpoint=model_final.pth
    python train_net.py --config-file X.py --synthetic          # CPU-sized run on synthetic data
    python train_net.py --config-file X.py --train-coco TRAIN.json IMGS --test-coco VAL.json IMGS

``--config-file`` is a path, or when no such file exists a name in d2_boxunc's model zoo
(:mod:`d2_boxunc.model_zoo`, the configs shipped in the package).
``--synthetic`` applies :func:`d2_boxunc.config.to_synthetic` before the ``key=value`` overrides.
``--train-coco`` / ``--test-coco`` train and evaluate on your own COCO-format json (after
``--synthetic``, before the overrides; :func:`d2_boxunc.config.own_data.use_own_data`).
On a machine without a GPU, ``--num-gpus N`` starts N CPU worker processes (gloo backend).
``--resume`` continues bit for bit (checkpoints carry RNG and data-stream state) and refuses a
changed schedule unless ``--resume-new-schedule``; ``--eval-only`` refuses a checkpoint whose
keys do not match the model unless ``--allow-partial-load`` (docs/reliability.md).
The config file must define ``model``, ``dataloader``, ``optimizer``, ``lr_multiplier`` and
``train``; ``dataloader.evaluator`` (optional) evaluates ``dataloader.test``, and is instantiated
as the config writes it (the shipped configs list COCO AP, oLRP and box-uncertainty evaluators,
``configs/common/evaluation.py``).
"""

import logging
import sys

from detectron2.config import instantiate
from detectron2.engine import (
    AMPTrainer,
    SimpleTrainer,
    default_argument_parser,
    default_setup,
    default_writers,
    hooks,
    launch,
)
from detectron2.engine.defaults import create_ddp_model
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

import d2_boxunc.data  # noqa: F401  (loads the compiled ops, registers the synthetic datasets)
from d2_boxunc.config.cli import (
    ConfigError,
    add_own_data_arguments,
    check_datasets,
    check_device,
    check_output_dir,
    load_config_from_args,
    resolve_config_file,
)
from d2_boxunc.engine import (
    ResumableTrainLoader,
    SafeCheckpointer,
    TrainingState,
    build_train_loader,
    load_weights,
    preserved_rng_states,
    schedule_of,
)
from d2_boxunc.engine.evaluation import NonFiniteMetricError, do_test

logger = logging.getLogger("d2_boxunc")


def _cpu_ddp_kwargs(cfg) -> dict:
    """DDP on CPU (gloo) takes no device ids and no fp16 gradient compression."""
    return dict(device_ids=None, fp16_compression=False) if cfg.train.device == "cpu" else {}


class _EvalDuringTraining:
    """``do_test`` for ``EvalHook``: it leaves the training RNGs as they were (so evaluating
    never changes what training draws next, and a resumed run matches an uninterrupted one),
    and a NaN headline metric is remembered, not raised inside the training loop: a periodic
    evaluation warns, the final one fails the run once training has ended."""

    def __init__(self, cfg, model):
        self.cfg, self.model = cfg, model
        self.error: NonFiniteMetricError | None = None

    def __call__(self) -> dict:
        with preserved_rng_states():
            try:
                results = do_test(self.cfg, self.model)
                self.error = None
            except NonFiniteMetricError as e:
                logger.warning(f"evaluation: {e}")
                self.error = e
                results = {}
        return results


def _train_seed(cfg) -> int | None:
    seed = cfg.train.get("seed", -1)
    return int(seed) if seed is not None and int(seed) >= 0 else None


def do_train(args, cfg) -> None:
    """Train with detectron2's (AMP)SimpleTrainer, its checkpointing, eval and logging hooks.

    Checkpoints are written atomically and carry what a bit-exact ``--resume`` needs
    (:mod:`d2_boxunc.engine`).  ``--resume`` refuses a checkpoint trained with another
    schedule unless ``--resume-new-schedule`` is given.

    Args:
        cfg: a LazyConfig with model, dataloader.train, optimizer, lr_multiplier and train
            (output_dir, init_checkpoint, max_iter, amp, ddp, checkpointer, eval_period,
            log_period, device).
    """
    model = instantiate(cfg.model)
    logger.info(f"Model:\n{model}")
    model.to(cfg.train.device)

    cfg.optimizer.params.model = model
    optim = instantiate(cfg.optimizer)
    train_loader = build_train_loader(cfg.dataloader.train, seed=_train_seed(cfg))

    model = create_ddp_model(model, **{**cfg.train.ddp, **_cpu_ddp_kwargs(cfg)})
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(model, train_loader, optim)
    checkpointer = SafeCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    state = TrainingState(
        loader=train_loader if isinstance(train_loader, ResumableTrainLoader) else None,
        schedule=schedule_of(cfg),
        checkpoint_period=cfg.train.checkpointer.period,
    )
    evaluate = _EvalDuringTraining(cfg, model)
    trainer.register_hooks(
        [
            state,  # first: its after_step gathers the ranks' states before a checkpoint
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            (
                hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
                if comm.is_main_process()
                else None
            ),
            hooks.EvalHook(cfg.train.eval_period, evaluate),
            (
                hooks.PeriodicWriter(
                    default_writers(cfg.train.output_dir, cfg.train.max_iter),
                    period=cfg.train.log_period,
                )
                if comm.is_main_process()
                else None
            ),
        ]
    )
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    if checkpointer.resumed_from is not None:
        state.check_schedule(checkpointer.resumed_from, allow_change=args.resume_new_schedule)
    start_iter = trainer.iter + 1 if checkpointer.resumed_from is not None else 0
    trainer.train(start_iter, cfg.train.max_iter)
    if evaluate.error is not None:
        raise evaluate.error


def _check_classes_agree(cfg, args) -> None:
    """Training with ``--test-coco`` alone: the config's training set must have its classes."""
    if args.eval_only or args.test_coco is None or args.train_coco is not None:
        return
    from detectron2.data import MetadataCatalog

    test_classes = MetadataCatalog.get(cfg.dataloader.test.dataset.names).get("thing_classes")
    names = cfg.dataloader.train.dataset.names
    for name in [names] if isinstance(names, str) else list(names):
        classes = MetadataCatalog.get(name).get("thing_classes", None)
        if classes is not None and list(classes) != list(test_classes):
            raise ConfigError(
                f"the training set '{name}' has {len(classes)} classes but --test-coco has "
                f"{len(test_classes)} ({', '.join(test_classes[:5])}"
                f"{', ...' if len(test_classes) > 5 else ''}); give --train-coco too, "
                "or --eval-only to evaluate a checkpoint"
            )


def setup_config(args):
    """Load the config with the command line's flags (own data is registered in the calling
    process), check its datasets, and fail in one line on a mistake."""
    # a model-zoo name becomes the file's path here: default_setup reads and copies the file
    args.config_file = resolve_config_file(args.config_file)
    cfg = load_config_from_args(args)
    if args.eval_only and not cfg.train.init_checkpoint:
        raise ConfigError(
            "--eval-only needs the weights to evaluate: train.init_checkpoint=PATH "
            "(without it a randomly initialised model would be evaluated)"
        )
    check_output_dir(cfg.train.output_dir)
    _check_classes_agree(cfg, args)
    check_datasets(cfg, parts=("test",) if args.eval_only else ("train", "test"))
    check_device(cfg.train.device)
    return cfg


def main(args) -> dict | None:
    cfg = setup_config(args)
    default_setup(cfg, args)
    # default_setup shows detectron2's and fvcore's logs; show this package's too
    setup_logger(
        cfg.train.output_dir, distributed_rank=comm.get_rank(), name="d2_boxunc", abbrev_name="d2bu"
    )

    if args.eval_only:
        model = instantiate(cfg.model)
        model.to(cfg.train.device)
        model = create_ddp_model(model, **_cpu_ddp_kwargs(cfg))
        load_weights(model, cfg.train.init_checkpoint, args.allow_partial_load)
        return do_test(cfg, model)
    do_train(args, cfg)
    return None


def get_parser():
    parser = default_argument_parser()
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="turn the config into a CPU-sized run on the synthetic dataset (d2_boxunc.config.to_synthetic)",
    )
    parser.add_argument(
        "--resume-new-schedule",
        action="store_true",
        help="with --resume: continue even if train.max_iter or lr_multiplier differ from the "
        "checkpoint's (the learning-rate schedule changes from there on)",
    )
    parser.add_argument(
        "--allow-partial-load",
        action="store_true",
        help="with --eval-only: evaluate even if the checkpoint's keys do not all match the "
        "model (missing weights keep their random initialisation)",
    )
    add_own_data_arguments(parser)
    return parser


def _main_with_clear_errors(args):
    try:
        return main(args)
    except ConfigError as e:
        # Expected user errors: one line, no traceback.
        print(f"train_net.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    except NonFiniteMetricError as e:
        # Not a usage error, but not a bug in this program either: one line, exit 1.
        print(f"train_net.py: error: {e}", file=sys.stderr)
        sys.exit(1)


def invoke_main() -> None:
    args = get_parser().parse_args()
    try:
        # Validate (and generate synthetic data) before spawning workers: a typo fails fast.
        # Each worker loads the config again in main(), which registers own data there too.
        setup_config(args)
    except ConfigError as e:
        print(f"train_net.py: error: {e}", file=sys.stderr)
        sys.exit(2)
    launch(
        _main_with_clear_errors,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    invoke_main()
