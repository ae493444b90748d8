"""Training-loop reliability: bit-exact resume (:mod:`.resume`) and safe checkpoints
(:mod:`.checkpoint`).  See docs/reliability.md."""

from d2_boxunc.engine.checkpoint import (
    CheckpointReadError,
    SafeCheckpointer,
    atomic_write,
    check_complete_load,
    load_weights,
)
from d2_boxunc.engine.resume import (
    ResumableTrainingSampler,
    ResumableTrainLoader,
    TrainingState,
    build_train_loader,
    preserved_rng_states,
    schedule_of,
)

__all__ = [
    "CheckpointReadError",
    "ResumableTrainLoader",
    "ResumableTrainingSampler",
    "SafeCheckpointer",
    "TrainingState",
    "atomic_write",
    "build_train_loader",
    "check_complete_load",
    "load_weights",
    "preserved_rng_states",
    "schedule_of",
]
