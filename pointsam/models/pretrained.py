r"""Trained models shipped inside the package (a small model zoo; nothing downloads).

Each model is ``pointsam/pretrained/<name>.pt`` (at most 5 MB, loaded with
``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts
only) next to its model card ``<name>.md`` (training data and command,
metrics, classes, expected input, licence of the training data).

The ``.pt`` file is a dict::

    {"format": "pointsam-pretrained", "version": 1, "name": str,
     "model": registered model name, "args": its keyword arguments,
     "state_dict": weights (float16 or float32), "task": "cls" | "semseg",
     "classes": [names], "colors": [[r, g, b] in 0..1] or None,
     "config": {"data": {...}, "train": {...}} (how to feed it),
     "input": {...} (columns, units, frame), "metrics": {...}}

Example:
    >>> "pointnet2_lite_lidarseg_kitti" in list_pretrained()
    True
    >>> m = load_pretrained("pointnet2_lite_lidarseg_kitti")
    >>> m.pretrained["task"], len(m.pretrained["classes"])
    ('semseg', 19)
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .registry import create_model

__all__ = ["list_pretrained", "pretrained_info", "load_pretrained", "model_card",
           "pretrained_path", "FORMAT"]

FORMAT = "pointsam-pretrained"
MAX_BYTES = 5 * 1024 * 1024


def _dir() -> Path:
    return Path(str(resources.files("pointsam").joinpath("pretrained")))


def list_pretrained() -> list[str]:
    """Names of the shipped models, sorted."""
    d = _dir()
    return sorted(p.stem for p in d.glob("*.pt")) if d.is_dir() else []


def pretrained_path(name: str) -> Path:
    """Path of a shipped model's ``.pt``; an unknown name lists the valid ones.

    Raises:
        ValueError: ``name`` is not a shipped model.
    """
    names = list_pretrained()
    if not isinstance(name, str) or name not in names:
        raise ValueError(f"unknown pretrained model {name!r}; shipped models: "
                         f"{', '.join(names) or '(none)'} (see `pointsam models`)")
    return _dir() / f"{name}.pt"


def pretrained_info(name: str) -> dict[str, Any]:
    """Everything in the model's file except the weights."""
    state = _load(name)
    return {k: v for k, v in state.items() if k != "state_dict"}


def model_card(name: str) -> str:
    """The model card (markdown) of a shipped model."""
    return pretrained_path(name).with_suffix(".md").read_text()


def _load(name: str) -> dict[str, Any]:
    path = pretrained_path(name)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pointsam pretrained model file")
    return state


def load_pretrained(name: str) -> nn.Module:
    """A shipped model, built from its registered name, in eval mode (float32).

    The file's metadata is attached as ``model.pretrained`` (a dict: task,
    classes, colours, input expectations, inference settings, metrics).

    Raises:
        ValueError: unknown name (the message lists the shipped ones).
    """
    state = _load(name)
    model = create_model(state["model"], **state.get("args", {}))
    weights = {k: v.float() if v.is_floating_point() else v
               for k, v in state["state_dict"].items()}
    model.load_state_dict(weights)
    model.eval()
    model.pretrained = {k: v for k, v in state.items() if k != "state_dict"}
    return model
