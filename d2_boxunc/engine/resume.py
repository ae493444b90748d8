"""Bit-exact ``--resume``: a position-addressable training data stream, and a hook that puts the
RNG states, the data position, the recent metric history and the schedule into checkpoints.

detectron2's training loader draws its order from a ``TrainingSampler`` seeded once, draws its
augmentations from RNGs that live in the data loader's worker processes, and keeps a few mapped
images in an aspect-ratio grouping buffer between batches.  None of that is in a checkpoint, so a
resumed run used to see other data than an uninterrupted one.  Here:

- :class:`ResumableTrainingSampler`: the infinite shuffled index stream, in which position ``p``
  is item ``p % size`` of epoch ``p // size`` and each epoch's order is drawn from a generator
  seeded with ``(seed, epoch)``.  Any position is reached without replaying the stream.
- :class:`ResumableTrainLoader`: what ``build_detection_train_loader`` builds (same arguments;
  batches of mapped dicts grouped by aspect ratio), except that before an item is mapped the
  python, numpy and torch RNGs are seeded from ``(seed, position)``.  An item's augmentation thus
  depends on its position only, not on which worker mapped it or what it mapped before, and the
  loader's whole state is two things: the next stream position, and the positions waiting in
  the aspect-ratio buckets (re-mapped, identically, on resume).
- :class:`TrainingState`: a hook, so the trainer's checkpoint carries its ``state_dict``: the
  loader's state, the global RNG states (torch, CUDA, numpy, python) and the
  ``torch.Generator`` s that model modules own (IoU-Net's jittered RoIs), for every rank; the
  last values of each logged scalar (so smoothed losses in ``metrics.json`` continue exactly);
  and the schedule (``train.max_iter`` and ``lr_multiplier``), which
  :meth:`TrainingState.check_schedule` compares on resume.

``train_net.py`` builds ``dataloader.train`` with :func:`build_train_loader`, which falls back
to the config's own loader (with a warning that resume cannot continue its data stream exactly)
when the node is not a plain ``build_detection_train_loader`` over a list of dataset dicts.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import random
from collections.abc import Iterator

import numpy as np
import torch
from detectron2.config import instantiate
from detectron2.data import build_detection_train_loader
from detectron2.data.common import DatasetFromList
from detectron2.engine import HookBase
from detectron2.utils import comm
from detectron2.utils.registry import locate
from detectron2.utils.serialize import PicklableWrapper
from omegaconf import DictConfig, ListConfig
from torch.utils.data import DataLoader, IterableDataset, Sampler, get_worker_info

from d2_boxunc.config.cli import ConfigError

__all__ = [
    "ResumableTrainLoader",
    "ResumableTrainingSampler",
    "TrainingState",
    "build_train_loader",
    "capture_rng_states",
    "derive_seed",
    "preserved_rng_states",
    "restore_rng_states",
    "schedule_of",
]

logger = logging.getLogger(__name__)

# Values of each logged scalar kept in checkpoints: detectron2's writers smooth over the last 20.
METRIC_HISTORY_KEPT = 100


def derive_seed(*keys: int) -> int:
    """A 32-bit seed from non-negative integers (hashed with numpy's ``SeedSequence``)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


# ----------------------------------------------------------------------------------------------
# RNG states
# ----------------------------------------------------------------------------------------------


def capture_rng_states() -> dict:
    """The global RNG states (torch CPU, CUDA if initialised, numpy, python ``random``), in a
    form ``torch.load(weights_only=True)`` reads back."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_states(state: dict) -> None:
    """Set the global RNGs to ``state`` (from :func:`capture_rng_states`)."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@contextlib.contextmanager
def preserved_rng_states():
    """Run a block without changing the global RNG states (e.g. an evaluation during
    training, so that evaluating does not change what the training draws next)."""
    state = capture_rng_states()
    try:
        yield
    finally:
        restore_rng_states(state)


@contextlib.contextmanager
def _seeded_rngs(seed: int):
    """Seed python, numpy and torch with ``seed`` inside the block; restore them after."""
    with preserved_rng_states():
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        yield


def _module_generators(model: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Module, str]]:
    """``(key, module, attribute)`` of every ``torch.Generator`` a submodule holds."""
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Generator):
                yield f"{name}:{attr}", module, attr


def _generator_states(model: torch.nn.Module) -> dict:
    return {
        key: {
            "device": str(getattr(module, attr).device),
            "state": getattr(module, attr).get_state(),
        }
        for key, module, attr in _module_generators(model)
    }


def _restore_generators(model: torch.nn.Module, states: dict) -> None:
    modules = dict(model.named_modules())
    for key, saved in states.items():
        name, attr = key.rsplit(":", 1)
        if name not in modules:
            logger.warning(f"resume: the model has no module '{name}'; its RNG state is ignored")
            continue
        generator = torch.Generator(device=saved["device"])
        generator.set_state(saved["state"])
        setattr(modules[name], attr, generator)


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------


class ResumableTrainingSampler(Sampler):
    """The infinite stream of dataset indices of detectron2's ``TrainingSampler``, addressable by
    position: position ``p`` is item ``p % size`` of epoch ``p // size``, and epoch ``e``'s order
    is a permutation drawn from a generator seeded with ``derive_seed(seed, e)`` (or ``range``
    without ``shuffle``).  Iterating yields the stream from ``start``.

    Args:
        size: number of items in the dataset.
        shuffle: shuffle each epoch.
        seed: the stream's seed, the same on every process; None draws one shared by all
            processes (``comm.shared_random_seed``).
        start: the first position ``__iter__`` yields.
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int | None = None, start: int = 0):
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"ResumableTrainingSampler needs a positive size, got {size!r}")
        self.size = size
        self.shuffle = shuffle
        self.start = int(start)
        self._epoch, self._order = None, None
        self.seed = int(comm.shared_random_seed() if seed is None else seed)

    @property
    def seed(self) -> int:
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"the sampler's seed must be non-negative, got {value}")
        self._seed = int(value)
        self._epoch, self._order = None, None

    def index_at(self, position: int) -> int:
        """The dataset index at ``position`` of the stream."""
        if not self.shuffle:
            return position % self.size
        epoch = position // self.size
        if epoch != self._epoch:
            generator = torch.Generator()
            generator.manual_seed(derive_seed(self._seed, epoch))
            self._order = torch.randperm(self.size, generator=generator).tolist()
            self._epoch = epoch
        return self._order[position % self.size]

    def __iter__(self) -> Iterator[int]:
        for position in itertools.count(self.start):
            yield self.index_at(position)


def _identity(x):
    return x


class _PositionStream(IterableDataset):
    """``(rank-local position, mapped item)`` pairs for the rank-local positions ``first``, then
    ``start, start + 1, ...``; with several loader workers, worker ``w`` of ``W`` maps every
    ``W``-th, so the loader delivers them in this order."""

    def __init__(self, dataset, mapper, sampler, first, start, rank, world_size):
        self._dataset = dataset
        self._mapper = mapper
        self._sampler = sampler
        self._first = list(first)
        self._start = start
        self._rank = rank
        self._world_size = world_size

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        positions = itertools.chain(self._first, itertools.count(self._start))
        for j, position in enumerate(positions):
            if j % workers == worker:
                # ranks share the stream as detectron2's TrainingSampler does: rank r of R
                # takes positions r, r + R, r + 2R, ...
                yield position, self._map(position * self._world_size + self._rank)

    def _map(self, position: int):
        index = self._sampler.index_at(position)
        for attempt in itertools.count():
            with _seeded_rngs(derive_seed(self._sampler.seed, position, attempt)):
                data = self._mapper(self._dataset[index])
            if data is not None:
                return data
            # like detectron2's MapDataset: the mapper skipped the item, try another one
            if attempt == 2:
                logger.warning(f"the mapper skipped {attempt + 1} items in a row (last: {index})")
            index = random.Random(derive_seed(self._sampler.seed, position, attempt + 1)).randrange(
                len(self._dataset)
            )


def check_image_files(dataset_dicts: list[dict]) -> None:
    """One-line :class:`ConfigError` when image files of ``dataset_dicts`` do not exist (a
    ``stat`` each: found before training starts, not when the image is first sampled)."""
    missing = [
        d["file_name"]
        for d in dataset_dicts
        if isinstance(d, dict) and "file_name" in d and not os.path.isfile(d["file_name"])
    ]
    if missing:
        raise ConfigError(
            f"{len(missing)} of {len(dataset_dicts)} training image file(s) not found; "
            f"first: {missing[0]}"
        )


class ResumableTrainLoader:
    """Training batches that can be saved and restored mid-stream (see the module docstring).

    Same arguments as detectron2's ``build_detection_train_loader`` for a list of dataset dicts,
    plus ``seed``; each iteration yields a list of ``total_batch_size / world_size`` mapped dicts
    (of one aspect-ratio group with ``aspect_ratio_grouping``), or ``collate_fn`` of it.

    Args:
        dataset: list of dataset dicts (their image files must exist).
        mapper: callable from a dataset dict to the model's input (None: the dict itself); it
            may return None to skip an item.
        total_batch_size: images per iteration over all processes.
        aspect_ratio_grouping: batch images with ``width > height`` apart from the others.
        num_workers: data loader worker processes.
        collate_fn: applied to each batch (list); default: none.
        seed: the stream's seed, the same on every process (None: a shared random one).
        **loader_kwargs: passed to ``torch.utils.data.DataLoader`` (``pin_memory``, ...).
    """

    def __init__(
        self,
        dataset: list,
        *,
        mapper=None,
        total_batch_size: int,
        aspect_ratio_grouping: bool = True,
        num_workers: int = 0,
        collate_fn=None,
        seed: int | None = None,
        **loader_kwargs,
    ):
        world_size = comm.get_world_size()
        if total_batch_size <= 0 or total_batch_size % world_size:
            raise ValueError(
                f"Total batch size ({total_batch_size}) must be divisible by the number of "
                f"processes ({world_size})."
            )
        check_image_files(dataset)
        self.batch_size = total_batch_size // world_size
        self.sampler = ResumableTrainingSampler(len(dataset), seed=seed)
        self.num_workers = num_workers
        self._dataset = DatasetFromList(dataset, copy=False)
        self._mapper = PicklableWrapper(mapper if mapper is not None else _identity)
        self._grouping = aspect_ratio_grouping
        self._collate = collate_fn
        self._loader_kwargs = loader_kwargs
        self._next = 0  # the next rank-local position not yet taken from the stream
        self._waiting: list[int] = []  # positions to map first (in buckets when saved)
        self._buckets: list[list] | None = None  # (position, item) pairs, while iterating
        self._unseen: set[int] = set()  # positions of _waiting not yet re-delivered

    def _waiting_positions(self) -> list[int]:
        if self._buckets is None:
            return sorted(self._waiting)
        in_buckets = {p for bucket in self._buckets for p, _ in bucket}
        return sorted(in_buckets | self._unseen)

    def state_dict(self) -> dict:
        """Where the stream stands: its seed, the next position, the positions waiting in the
        aspect-ratio buckets (rank-local)."""
        return {
            "seed": self.sampler.seed,
            "next_position": self._next,
            "waiting": self._waiting_positions(),
            "world_size": comm.get_world_size(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue the stream of ``state``: takes effect at the next ``iter()``."""
        if state.get("world_size", 1) != comm.get_world_size():
            logger.warning(
                f"resume: the data stream was saved with {state.get('world_size')} processes, "
                f"now {comm.get_world_size()}; continuing from the same position of a "
                "differently shared stream"
            )
        self.sampler.seed = state["seed"]
        self._next = int(state["next_position"])
        self._waiting = [int(p) for p in state["waiting"]]
        self._buckets = None

    def __iter__(self):
        first, start = self._waiting_positions(), self._next
        self._waiting, self._unseen = first, set(first)
        buckets = [[] for _ in range(2 if self._grouping else 1)]
        self._buckets = buckets
        stream = _PositionStream(
            self._dataset,
            self._mapper,
            self.sampler,
            first,
            start,
            comm.get_rank(),
            comm.get_world_size(),
        )
        # the loader's own generator: creating its iterator draws nothing from the global RNG
        generator = torch.Generator()
        generator.manual_seed(derive_seed(self.sampler.seed, start))
        loader = DataLoader(
            stream,
            batch_size=None,
            num_workers=self.num_workers,
            collate_fn=_identity,
            generator=generator,
            **self._loader_kwargs,
        )
        for position, item in loader:
            self._unseen.discard(position)
            self._next = max(self._next, position + 1)
            # detectron2's AspectRatioGroupedDataset: width > height in bucket 0
            bucket = buckets[0 if not self._grouping or item["width"] > item["height"] else 1]
            bucket.append((position, item))
            if len(bucket) == self.batch_size:
                batch = [x for _, x in bucket]
                del bucket[:]
                yield self._collate(batch) if self._collate is not None else batch


def build_train_loader(node, seed: int | None):
    """Instantiate ``dataloader.train``: a ``build_detection_train_loader`` node over a list of
    dataset dicts (every config here) becomes a :class:`ResumableTrainLoader` with the same
    arguments; anything else is instantiated as it is, with a warning."""
    target = node.get("_target_", None) if isinstance(node, DictConfig) else None
    if isinstance(target, str):
        target = locate(target)
    if target is build_detection_train_loader and node.get("sampler", None) is None:
        kwargs = {k: instantiate(node[k]) for k in node.keys() if k not in ("_target_", "sampler")}
        dataset = kwargs.pop("dataset", None)
        if isinstance(dataset, list):
            return ResumableTrainLoader(dataset, seed=seed, **kwargs)
        loader = build_detection_train_loader(dataset, **kwargs)
    else:
        loader = instantiate(node)
    logger.warning(
        "dataloader.train is not build_detection_train_loader over a list of dataset dicts: "
        "--resume will not continue its data stream exactly"
    )
    return loader


# ----------------------------------------------------------------------------------------------
# Schedule
# ----------------------------------------------------------------------------------------------


def _plain(node):
    """A JSON-able form of a config node (``_target_`` objects by their import path)."""
    if isinstance(node, DictConfig):
        return {str(k): _plain(node[k]) for k in node}
    if isinstance(node, (ListConfig, list, tuple)):
        return [_plain(v) for v in node]
    if isinstance(node, (str, int, float, bool)) or node is None:
        return node
    name = getattr(node, "__qualname__", None)
    module = getattr(node, "__module__", None)
    return f"{module}.{name}" if name and module else repr(node)


def schedule_of(cfg) -> dict:
    """What defines the learning-rate schedule: ``train.max_iter`` and ``lr_multiplier``."""
    return {
        "max_iter": int(cfg.train.max_iter),
        "lr_multiplier": json.dumps(_plain(cfg.lr_multiplier), sort_keys=True),
    }


# ----------------------------------------------------------------------------------------------
# The hook
# ----------------------------------------------------------------------------------------------


class TrainingState(HookBase):
    """Checkpoints what ``--resume`` needs besides the model, optimizer and LR scheduler.

    Register it first among the hooks (and before loading a checkpoint): its ``state_dict`` is
    saved inside the trainer's, and what it loads is applied in ``before_train``, right before
    the first resumed iteration.

    Args:
        loader: the :class:`ResumableTrainLoader`, or None (then the data stream restarts).
        schedule: :func:`schedule_of` of the config.
        checkpoint_period: ``train.checkpointer.period``: with several processes, the per-rank
            states are gathered in ``after_step`` of the iterations that save a checkpoint.
    """

    def __init__(self, loader=None, schedule: dict | None = None, checkpoint_period: int = 0):
        self.loader = loader
        self.schedule = schedule
        self.checkpoint_period = checkpoint_period
        self.loaded: dict | None = None  # what a checkpoint held, once loaded
        self._gathered: list | None = None
        self._to_restore: dict | None = None

    def _local_state(self) -> dict:
        return {
            "rng": capture_rng_states(),
            "generators": _generator_states(self.trainer.model),
            "data": self.loader.state_dict() if self.loader is not None else None,
        }

    def after_step(self):
        if comm.get_world_size() == 1:
            return
        it, period = self.trainer.iter, self.checkpoint_period
        if (period and (it + 1) % period == 0) or it >= self.trainer.max_iter - 1:
            self._gathered = comm.all_gather(self._local_state())

    def _metric_history(self) -> dict:
        storage = getattr(self.trainer, "storage", None)
        if storage is None:
            return {}
        return {
            name: [(float(v), int(i)) for v, i in buffer.values()[-METRIC_HISTORY_KEPT:]]
            for name, buffer in storage.histories().items()
        }

    def state_dict(self) -> dict:
        ranks = [self._local_state()] if comm.get_world_size() == 1 else self._gathered
        return {
            "ranks": ranks,
            "metrics": self._metric_history(),
            "schedule": self.schedule,
        }

    def load_state_dict(self, state: dict) -> None:
        self.loaded = state
        ranks = state.get("ranks") or []
        if len(ranks) != comm.get_world_size():
            logger.warning(
                f"resume: the checkpoint holds the RNG and data states of {len(ranks)} "
                f"process(es), this run has {comm.get_world_size()}: they start afresh"
            )
            mine = None
        else:
            mine = ranks[comm.get_rank()]
        if mine is not None and mine.get("data") is not None and self.loader is not None:
            self.loader.load_state_dict(mine["data"])
        self._to_restore = {"rank": mine, "metrics": state.get("metrics") or {}}

    def before_train(self):
        if self._to_restore is None:
            return
        mine, metrics = self._to_restore["rank"], self._to_restore["metrics"]
        self._to_restore = None
        histories = self.trainer.storage.histories()
        for name, values in metrics.items():
            for value, iteration in values:
                histories[name].update(value, iteration)
        if mine is not None:
            _restore_generators(self.trainer.model, mine.get("generators") or {})
            restore_rng_states(mine["rng"])

    def check_schedule(self, path: str, allow_change: bool = False) -> None:
        """After resuming from ``path``: a one-line :class:`ConfigError` when the checkpoint was
        trained with another schedule than this run's (unless ``allow_change``)."""
        if self.loaded is None:
            logger.warning(
                f"resume: {path} holds no training state (saved by an older version): the "
                "RNG and data stream start afresh and the schedule cannot be checked"
            )
            return
        saved = self.loaded.get("schedule")
        if saved is None or self.schedule is None or saved == self.schedule:
            return
        changes = []
        if saved.get("max_iter") != self.schedule["max_iter"]:
            changes.append(f"train.max_iter {saved.get('max_iter')} -> {self.schedule['max_iter']}")
        if saved.get("lr_multiplier") != self.schedule["lr_multiplier"]:
            changes.append("lr_multiplier differs")
        message = (
            f"{path} was trained with another learning-rate schedule ({'; '.join(changes)}); "
            "resuming would silently follow a different one"
        )
        if allow_change:
            logger.warning(f"resume: {message}; continuing (--resume-new-schedule)")
            return
        raise ConfigError(f"{message}: give --resume-new-schedule to resume anyway")
