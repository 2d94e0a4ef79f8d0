"""Training: the loop (``loop.fit``), one optimisation step and validation (``step``), the
settings and the record of a run (``config``), and checkpoints (``checkpoint``).

Students call ``lk.fit(model, train, val, config)``; ``lk.TrainConfig`` holds the settings.
"""

from labkit.train.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from labkit.train.config import (
    MONITORS,
    OPTIMIZERS,
    SCHEDULERS,
    STOP_REASONS,
    History,
    TrainConfig,
    make_config,
)
from labkit.train.loop import fit, make_optimizer, make_scheduler
from labkit.train.step import NonFiniteLossError

__all__ = [
    "MONITORS",
    "OPTIMIZERS",
    "SCHEDULERS",
    "STOP_REASONS",
    "CheckpointError",
    "History",
    "NonFiniteLossError",
    "TrainConfig",
    "fit",
    "load_checkpoint",
    "load_model",
    "make_config",
    "make_optimizer",
    "make_scheduler",
    "save_checkpoint",
]
