"""Checkpoints that are never half-written, a resume that survives a bad newest checkpoint, and
a strict load for evaluation.

:class:`SafeCheckpointer` is detectron2's ``DetectionCheckpointer`` with three changes:

- ``save`` writes each file (the ``.pth`` and ``last_checkpoint``) to a temporary file in the same
  folder, flushes it to disk and renames it into place, so a crash or a full disk never leaves a
  truncated checkpoint under a checkpoint's name, and ``last_checkpoint`` only ever names a
  complete file;
- ``resume_or_load(resume=True)`` tries the file ``last_checkpoint`` names, then every other
  ``model_*.pth`` of the folder, newest first, and resumes from the first that loads; what it
  skipped (an empty or missing ``last_checkpoint``, a missing, empty or corrupt file) is named
  in one warning line.  When checkpoint files exist but none loads it stops with a one-line
  error; when there are none it starts from ``train.init_checkpoint``, like a new run;
- a file that cannot be read raises :class:`CheckpointReadError`, a one-line
  :class:`~d2_boxunc.config.cli.ConfigError`, and the keys a load did not match are kept in
  ``incompatible``, for :func:`check_complete_load`.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import tempfile

import torch
from detectron2.checkpoint import DetectionCheckpointer

from d2_boxunc.config.cli import ConfigError

__all__ = [
    "CheckpointReadError",
    "SafeCheckpointer",
    "atomic_write",
    "check_complete_load",
    "load_weights",
]

logger = logging.getLogger(__name__)

_ITERATION = re.compile(r"model_(\d+)\.pth$")


class CheckpointReadError(ConfigError):
    """A checkpoint file that cannot be read (missing, empty, truncated, not a checkpoint)."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def atomic_write(path: str, write) -> None:
    """Call ``write(f)`` on a temporary binary file next to ``path``, flush it to disk, and
    rename it to ``path``: readers see the old file or the complete new one, never a part."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; a checkpoint gets the usual mode
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


class SafeCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` with atomic saves, a resume that falls back to the newest
    loadable checkpoint, and one-line errors for unreadable files (see the module docstring).

    After ``resume_or_load``, ``resumed_from`` is the file resumed from (None: not resumed);
    after any load, ``incompatible`` holds the missing / unexpected keys and wrong shapes.
    """

    def __init__(self, model, save_dir="", *, save_to_disk=None, **checkpointables):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.resumed_from: str | None = None
        self.incompatible = None

    # -- writing ---------------------------------------------------------------------------

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write(
            os.path.join(self.save_dir, "last_checkpoint"),
            lambda f: f.write(last_filename_basename.encode()),
        )

    # -- reading ---------------------------------------------------------------------------

    def _load_file(self, filename):
        try:
            return super()._load_file(filename)
        except CheckpointReadError:
            raise
        except Exception as e:  # truncated, empty, or not a checkpoint at all
            raise CheckpointReadError(
                f"cannot load checkpoint '{filename}': {_first_line(e)}"
            ) from None

    def _load_model(self, checkpoint):
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible

    def load(self, path, *args, **kwargs):
        if path and not os.path.isfile(path) and "://" not in path:
            raise CheckpointReadError(f"cannot load checkpoint '{path}': file not found")
        try:
            return super().load(path, *args, **kwargs)
        except CheckpointReadError:
            # DetectionCheckpointer.load resets this only when it succeeds; the next load (of
            # the next candidate) asserts that it is None
            self._parsed_url_during_load = None
            raise

    # -- resuming --------------------------------------------------------------------------

    def _resume_candidates(self) -> tuple[list[str], list[str]]:
        """Files to try, in order, and what was skipped before trying any."""
        skipped, first = [], None
        tag = os.path.join(self.save_dir, "last_checkpoint")
        if os.path.isfile(tag):
            with open(tag, encoding="utf-8", errors="replace") as f:
                named = f.read().strip()
            if not named:
                skipped.append("last_checkpoint (empty)")
            elif not os.path.isfile(os.path.join(self.save_dir, named)):
                skipped.append(f"{named} (named by last_checkpoint; not found)")
            else:
                first = os.path.join(self.save_dir, named)
        files = glob.glob(os.path.join(glob.escape(self.save_dir), "model_*.pth"))
        if files and not os.path.isfile(tag):
            skipped.append("last_checkpoint (missing)")

        def newest_first(path):
            match = _ITERATION.search(os.path.basename(path))
            iteration = int(match.group(1)) if match else float("inf")  # model_final last saved
            return (os.path.getmtime(path), iteration)

        others = sorted(
            (f for f in files if first is None or not os.path.samefile(f, first)),
            key=newest_first,
            reverse=True,
        )
        return ([first] if first else []) + others, skipped

    def resume_or_load(self, path: str, *, resume: bool = True):
        """Resume from the newest loadable checkpoint of ``save_dir`` (``resume``), or load
        ``path``'s weights only.  See the module docstring."""
        self.resumed_from = None
        if not resume:
            return self.load(path, checkpointables=[])
        candidates, skipped = self._resume_candidates()
        for candidate in candidates:
            try:
                ret = self.load(candidate)
            except CheckpointReadError as e:
                reason = str(e).split("': ", 1)[-1]
                skipped.append(f"{os.path.basename(candidate)} ({reason})")
                continue
            if skipped:
                logger.warning(
                    f"resume: skipped {'; '.join(skipped)}; resuming from "
                    f"{os.path.basename(candidate)}"
                )
            self.resumed_from = candidate
            return ret
        if candidates:
            raise ConfigError(
                f"--resume: no loadable checkpoint in {self.save_dir}: skipped "
                f"{'; '.join(skipped)} (remove them, or train without --resume)"
            )
        if skipped:
            logger.warning(
                f"resume: skipped {'; '.join(skipped)}; nothing to resume, starting anew"
            )
        return self.load(path, checkpointables=[])


def check_complete_load(checkpointer: SafeCheckpointer, path: str, allow_partial: bool) -> None:
    """After ``checkpointer.load(path)``: a one-line :class:`ConfigError` when model keys were
    missing or unexpected or had other shapes (unless ``allow_partial``, then a warning)."""
    incompatible = checkpointer.incompatible
    if incompatible is None:
        return
    problems = []
    for what, keys in (
        ("missing", incompatible.missing_keys),
        ("unexpected", incompatible.unexpected_keys),
        ("with another shape", [k for k, *_ in incompatible.incorrect_shapes]),
    ):
        if keys:
            shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
            problems.append(f"{len(keys)} {what} ({shown})")
    if not problems:
        return
    message = f"checkpoint '{path}' does not match the model: keys {'; '.join(problems)}"
    if allow_partial:
        logger.warning(f"{message}; loading what matches (--allow-partial-load)")
        return
    raise ConfigError(
        f"{message}; is it this config's checkpoint? (--allow-partial-load evaluates anyway)"
    )


def load_weights(model, path: str, allow_partial: bool = False) -> None:
    """Load ``path`` into ``model`` for evaluation: a corrupt or foreign file is a one-line
    :class:`CheckpointReadError`, keys that do not match the model a one-line ``ConfigError``
    (unless ``allow_partial``, :func:`check_complete_load`)."""
    checkpointer = SafeCheckpointer(model)
    checkpointer.load(path)
    check_complete_load(checkpointer, path, allow_partial)
