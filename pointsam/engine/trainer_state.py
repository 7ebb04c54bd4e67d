r"""The state half of :class:`~pointsam.engine.trainer.Trainer`: what a checkpoint holds.

:class:`TrainerState` builds the resumable ``state_dict`` (tensors, numbers,
strings and plain containers only, so it loads with ``weights_only=True``) and
restores a run from ``last.pt`` exactly (model, optimiser, scheduler, scaler,
RNG streams, the elapsed training time and the log); a resume that would change
the trajectory is refused, naming the keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from .checkpoint import (
    FORMAT,
    RESUME_FREE,
    VERSION,
    CheckpointError,
    get_rng_state,
    load_checkpoint,
    load_weights,
    set_rng_state,
)
from .config import config_diff, config_to_dict

__all__ = ["TrainerState", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _underlying(ds: Any) -> Any:
    while isinstance(ds, Subset):
        ds = ds.dataset
    return ds


class TrainerState:
    """Checkpoint state of a :class:`~pointsam.engine.trainer.Trainer` (a mixin).

    It reads the trainer's ``cfg``, ``task``, ``model``, ``model_args``,
    ``optimizer``, ``scheduler``, ``scaler``, ``epoch``, ``step``, ``train_time``,
    ``history``, ``best``, ``datasets``, ``device``, ``info`` and ``logger``.
    """

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs (tensors, numbers, strings, plain containers)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "config": config_to_dict(self.cfg),
            "meta": {
                **self.task.meta(),
                "model_name": self.cfg.model.name,
                "model_args": dict(self.model_args),
                "class_names": list(self.class_names),
                "category_names": self._names("categories"),
            },
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "train_time_s": self.train_time,
            "rng": get_rng_state(),
            "history": self.history,
            "best": self.best,
        }

    def _names(self, attr: str) -> list[str]:
        """The train split's declared ``classes`` or ``categories``
        (:class:`~pointsam.data.PointDataset`); none for a dataset that is not
        one."""
        names = getattr(_underlying(self.datasets["train"]), attr, ())
        return [str(n) for n in names] if isinstance(names, (list, tuple)) else []

    @property
    def class_names(self) -> list[str]:
        """Names of the labels (classes; empty for part ids)."""
        return [] if self.task.name == "partseg" else self._names("classes")

    def resume(self, path: str | Path) -> None:
        """Restore a run from ``last.pt`` (model, optimiser, scheduler, RNG, logs)."""
        state = load_checkpoint(path, map_location=self.device)
        diff = config_diff(state["config"], config_to_dict(self.cfg), RESUME_FREE)
        if diff:
            raise CheckpointError(
                f"cannot resume from {path}: this run changes "
                + "; ".join(f"{k} ({a!r} -> {b!r})" for k, a, b in diff)
                + ". A resumed run continues the same trajectory (model, data, "
                "optimiser, schedule, epochs); only "
                + ", ".join(sorted(RESUME_FREE)) + " may differ. Start a new run "
                "(another train.out_dir) to change the others.")
        load_weights(self.model, state, path, self.cfg.model.name,
                     dict(self.model_args))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.step = int(state.get("step", 0))  # train.steps runs (older: absent)
        self.train_time = float(state.get("train_time_s", 0.0))  # older: absent
        self.history = list(state["history"])
        self.best = dict(state["best"])
        set_rng_state(state["rng"])  # rank 0's state: exact on a single process
        if self.info.rank > 0:  # other ranks keep their own augmentation streams
            seed_everything(self.cfg.train.seed + 7919 * self.info.rank + self.epoch)
        self.logger.write_csv(self.history)
