r"""A shipped model (:mod:`pointsam.models.pretrained`) as the engine's predictors need it.

:func:`load_pretrained_trained` returns the same ``(model, task, config, meta)``
as :func:`~pointsam.engine.predict.load_trained` does for a checkpoint, so that
``pointsam predict --model NAME`` and ``pointsam viz --model NAME`` run the
same code as with a checkpoint of one's own.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .config import Config, config_from_dict
from .tasks import Task, make_task

__all__ = ["load_pretrained_trained"]


def load_pretrained_trained(name: str) -> tuple[nn.Module, Task, Config, dict[str, Any]]:
    """``(model in eval mode, task, config, meta)`` for a shipped model name.

    Raises:
        ValueError: unknown name (the message lists the shipped models).
    """
    from pointsam.models.pretrained import load_pretrained

    model = load_pretrained(name)
    info = model.pretrained
    cfg = config_from_dict(info.get("config") or {})
    meta = {
        "task": info["task"],
        "num_classes": len(info["classes"]),
        "ignore_index": -1,
        "model_name": info["model"],
        "model_args": dict(info.get("args", {})),
        "class_names": list(info["classes"]),
        "class_colors": info.get("colors"),
        "category_names": [],
        "pretrained": name,
    }
    return model, make_task(meta), cfg, meta
