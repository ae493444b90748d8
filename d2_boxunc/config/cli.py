"""Loading a LazyConfig from the command line, with one-line errors for the usual mistakes.

detectron2's ``LazyConfig.apply_overrides`` silently creates keys that do not exist, so a typo
such as ``train.max_iters=10`` is ignored without a word.  Here an override must name an existing
key (close matches are suggested); prefix it with ``+`` to add a new key on purpose.  An
override's value must have the type of the value it replaces (an integer for an integer, a number
for a float, true/false for a boolean, a list for a list), so ``optimizer.lr=abc`` is an error,
not a string that fails deep inside the optimizer.  A config file that does not run (a syntax
error, a NameError, ...) is reported with its file and line.
"""

from __future__ import annotations

import difflib
import os
import re
import sysconfig
import tempfile
import traceback

from detectron2.config import LazyConfig
from omegaconf import DictConfig, ListConfig, OmegaConf

REQUIRED_KEYS = ("model", "dataloader", "optimizer", "lr_multiplier", "train")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_MISSING = object()


class ConfigError(ValueError):
    """A mistake in the config file, an override or a path, reported as one line."""


def _all_keys(cfg, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(cfg, DictConfig):
        for k in cfg.keys():
            full = f"{prefix}{k}"
            keys.append(full)
            child = cfg._get_node(k)
            if isinstance(child, DictConfig):
                keys.extend(_all_keys(child, full + "."))
    return keys


def check_overrides(cfg: DictConfig, opts: list[str]) -> list[str]:
    """Validate ``key=value`` overrides; return them with the ``+`` prefixes removed."""
    clean = []
    for opt in opts:
        if "=" not in opt:
            raise ConfigError(f"override '{opt}' is not of the form key=value")
        key, _ = opt.split("=", 1)
        adding = key.startswith("+")
        key = key.lstrip("+")
        if not adding and OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
            close = difflib.get_close_matches(key, _all_keys(cfg), n=3, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise ConfigError(
                f"unknown config key '{key}' in override '{opt}'.{hint} "
                "(Use '+key=value' to add a new key.)"
            )
        clean.append(opt.lstrip("+"))
    return clean


def _describe_type(value) -> str | None:
    """What an override of ``value`` must be, or None when any value goes."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, (list, tuple, ListConfig)):
        return "a list"
    return None  # strings, None, config nodes, objects: no check


def _fits(old, new) -> bool:
    if new is None:
        return True
    if isinstance(old, bool):
        return isinstance(new, bool)
    if isinstance(old, int):
        return isinstance(new, int) and not isinstance(new, bool)
    if isinstance(old, float):
        return isinstance(new, (int, float)) and not isinstance(new, bool)
    if isinstance(old, (list, tuple, ListConfig)):
        return isinstance(new, (list, tuple, ListConfig))
    return True


def _select(cfg, key: str):
    try:
        return OmegaConf.select(cfg, key, default=_MISSING)
    except Exception:  # a broken interpolation: the override may be what fixes it
        return _MISSING


def apply_overrides(cfg: DictConfig, opts: list[str]) -> DictConfig:
    """Check ``key=value`` overrides (:func:`check_overrides`), apply them, and check that each
    value has the type of the value it replaced.

    Raises:
        ConfigError: unknown key, malformed override, or a value of the wrong type.
    """
    clean = check_overrides(cfg, opts)
    keys = [opt.split("=", 1)[0] for opt in clean]
    before = {key: _select(cfg, key) for key in keys}
    try:
        cfg = LazyConfig.apply_overrides(cfg, clean)
    except Exception as e:  # hydra's parser, or a key below a value that is not a config
        raise ConfigError(f"cannot apply overrides {' '.join(opts)}: {_first_line(e)}") from None
    for opt, key in zip(clean, keys):
        old, new = before[key], _select(cfg, key)
        if old is _MISSING or new is _MISSING or key.endswith("_target_"):
            continue
        expected = _describe_type(old)
        if expected is not None and not _fits(old, new):
            raise ConfigError(
                f"override '{opt}': {key} must be {expected} (it is {old!r}), got {new!r}"
            )
    return cfg


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


_LIBRARY_DIRS = tuple(
    os.path.realpath(p)
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
) + (os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),)


def _config_error_location(e: BaseException, config_file: str) -> str:
    """``file:line`` of the config line that raised ``e`` (the innermost frame that is not in
    python's or an installed library's code, nor in this package)."""
    if isinstance(e, SyntaxError):
        # detectron2 re-raises ast.parse's error (file "<unknown>") as "Config file X has
        # syntax error!", for the config and for the config files it imports
        named = re.match(r"Config file (.+) has syntax error!", str(e.msg))
        cause = e.__cause__ if isinstance(e.__cause__, SyntaxError) else e
        filename = named.group(1) if named else (e.filename or config_file)
        return f"{filename}:{cause.lineno}" if cause.lineno else filename
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        path = os.path.realpath(frame.filename)
        if os.path.isfile(path) and not path.startswith(_LIBRARY_DIRS):
            return f"{frame.filename}:{frame.lineno}"
    return config_file


def _load_lazy_config(config_file: str):
    try:
        return LazyConfig.load(config_file)
    except Exception as e:  # the config's own code failed: say where, not how detectron2 ran it
        where = _config_error_location(e, config_file)
        if isinstance(e, SyntaxError):
            cause = e.__cause__ if isinstance(e.__cause__, SyntaxError) else e
            detail = f"{type(cause).__name__}: {cause.msg}"
        else:
            detail = _first_line(e)
        raise ConfigError(f"{where}: {detail}") from None


def check_device(device: str) -> None:
    """``train.device`` must name a device this machine has."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"train.device={device!r} is not a device (cpu, cuda, cuda:N)") from None
    if parsed.type != "cuda":
        return
    if not torch.cuda.is_available():
        raise ConfigError(
            f"train.device={device!r} but no CUDA GPU is available here; use train.device=cpu "
            "(or --synthetic, a CPU-sized run)"
        )
    if parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ConfigError(
            f"train.device={device!r} but this machine has {torch.cuda.device_count()} GPU(s)"
        )


def check_output_dir(path: str) -> None:
    """``train.output_dir`` must be (or become) a folder this process can write to."""
    if not path:
        return
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"train.output_dir='{path}' is below a file: {existing} is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_test_", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ConfigError(
            f"train.output_dir='{path}' is not writable: {e.strerror or _first_line(e)}"
        ) from None


def _max_iter_override(opts: list[str]) -> int | None:
    for opt in opts:
        key, _, value = opt.partition("=")
        if key.lstrip("+") == "train.max_iter":
            try:
                return int(value)
            except ValueError:
                raise ConfigError(f"train.max_iter must be an integer, got '{value}'") from None
    return None


def resolve_config_file(config_file: str) -> str:
    """``config_file`` when that file exists, else the model-zoo config of that name
    (:func:`d2_boxunc.model_zoo.get_config_file`: ``KLLoss/kl_faster_rcnn_R_50_FPN_2x.py``, with
    or without a leading ``configs/``), so the paper configs are found from any folder and from
    an installed wheel.

    Raises:
        ConfigError: neither a file nor a zoo name.
    """
    if not config_file:
        raise ConfigError("no --config-file given")
    if os.path.isfile(config_file):
        return config_file
    from d2_boxunc.model_zoo import get_config_file

    try:
        return get_config_file(config_file)
    except RuntimeError:
        raise ConfigError(
            f"config file not found: {config_file} (nor a d2_boxunc model-zoo name such as "
            "KLLoss/kl_faster_rcnn_R_50_FPN_2x.py)"
        ) from None


def check_checkpoint(path: str) -> None:
    """A local ``train.init_checkpoint`` must exist (fvcore would silently start from scratch).

    The ImageNet backbones converted from torchvision (``*-torchvision.pkl``, loaded by the
    official-recipe configs) are made by ``d2_boxunc.tools.convert_weights``; the error names
    the command that writes the missing file.
    """
    if not path or _URL.match(path) or os.path.isfile(path):
        return
    converted = {
        "R-50-torchvision.pkl": "resnet50",
        "R-101-torchvision.pkl": "resnet101",
        "X-101-64x4d-torchvision.pkl": "resnext101_64x4d",
    }
    arch = converted.get(os.path.basename(path))
    if arch is not None:
        raise ConfigError(
            f"checkpoint not found: train.init_checkpoint='{path}'; write it from torchvision's "
            f"ImageNet {arch} weights with: python -m d2_boxunc.tools.convert_weights --arch "
            f"{arch} --input {arch}.pth --output {path} (the module docstring says where to get "
            "the .pth)"
        )
    raise ConfigError(f"checkpoint not found: train.init_checkpoint='{path}'")


def add_own_data_arguments(parser, train: bool = True):
    """Add ``--train-coco JSON IMAGE_DIR`` and ``--test-coco JSON IMAGE_DIR`` to ``parser``
    (values: None or a list of two strings, for :func:`load_config`)."""
    if train:  # commands that only run a model (predict) take the test set's classes
        parser.add_argument(
            "--train-coco",
            nargs=2,
            metavar=("JSON", "IMAGE_DIR"),
            default=None,
            help="train on your own COCO-format json and image folder (needs --test-coco); sets "
            "dataloader.train, and every num_classes to the json's class count",
        )
    parser.add_argument(
        "--test-coco",
        nargs=2,
        metavar=("JSON", "IMAGE_DIR"),
        default=None,
        help="evaluate on your own COCO-format json and image folder; sets dataloader.test, "
        "the evaluator's dataset and every num_classes",
    )
    return parser


def load_config(
    config_file: str,
    opts: list[str] | None = None,
    synthetic: bool = False,
    train_coco=None,
    test_coco=None,
):
    """Load ``config_file`` (a path, or a model-zoo name: :func:`resolve_config_file`); apply the
    synthetic CPU switch (``synthetic``), then your own COCO-format data (``train_coco`` /
    ``test_coco``: ``(json_file, image_dir)`` or None, see
    :func:`d2_boxunc.config.own_data.use_own_data`), then the ``key=value`` overrides.

    So ``synthetic`` with own data keeps the data and its classes and changes only the model size
    and schedule, and overrides win over both.  Own data is registered here, in each process that
    loads the config.

    Raises:
        ConfigError: missing file (and no zoo config of that name), a config file that does not
            run (file and line), missing top-level node, unknown override key or a value of the
            wrong type, a local checkpoint path that does not exist, or bad own data (one line
            each).
    """
    import d2_boxunc.data  # noqa: F401  (registers the synthetic datasets the configs name)

    opts = list(opts or [])
    config_file = resolve_config_file(config_file)
    cfg = _load_lazy_config(config_file)
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        raise ConfigError(f"{config_file} does not define {', '.join(missing)}")
    if synthetic:
        from d2_boxunc.config.synthetic import MAX_ITER, to_synthetic

        max_iter = _max_iter_override(opts)
        cfg = to_synthetic(cfg, max_iter=max_iter or MAX_ITER)
    if train_coco is not None or test_coco is not None:
        from d2_boxunc.config.own_data import use_own_data

        cfg = use_own_data(cfg, train=train_coco, test=test_coco)
    cfg = apply_overrides(cfg, opts)
    check_checkpoint(cfg.train.init_checkpoint)
    return cfg


def load_config_from_args(args):
    """:func:`load_config` with a parsed command line's ``config_file``, ``opts``, ``synthetic``,
    ``train_coco`` and ``test_coco`` (``train_net.py``, the study's ``eval_variants``)."""
    return load_config(
        args.config_file,
        args.opts,
        synthetic=args.synthetic,
        train_coco=args.train_coco,
        test_coco=args.test_coco,
    )


def check_datasets(cfg, parts=("train", "test")) -> None:
    """Make sure every dataset the config names in ``dataloader.<part>`` is registered and its
    files exist (an evaluation needs only ``parts=("test",)``).

    Synthetic splits are generated here if needed (once, before worker processes start).
    """
    from detectron2.data import MetadataCatalog

    from d2_boxunc.data.register import prepare_dataset

    for part in parts:
        node = cfg.dataloader.get(part, None)
        if node is None or "dataset" not in node:
            continue
        names = node.dataset.names
        for name in [names] if isinstance(names, str) else list(names):
            try:
                prepare_dataset(name)
            except KeyError as e:
                raise ConfigError(str(e).strip("\"'")) from None
            meta = MetadataCatalog.get(name)
            for attr in ("json_file", "image_root"):
                path = meta.get(attr, None)
                if path and not os.path.exists(path):
                    raise ConfigError(
                        f"dataset '{name}': {attr} '{path}' does not exist "
                        "(set DETECTRON2_DATASETS to the folder that holds it)"
                    )
