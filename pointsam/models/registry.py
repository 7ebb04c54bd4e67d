r"""The model registry: ``@register_model`` factories and ``create_model(name)``.

In the style of timm's ``timm/models/_registry.py`` (STYLE.md section 6): each
registered name is a small factory function; :func:`create_model` calls it with
the overrides. A duplicate name raises (timm only warns).
"""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatch
from typing import Any

from torch import nn

__all__ = ["register_model", "create_model", "list_models", "model_factory"]

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its ``__name__``; a second registration raises.

    Example:
        >>> @register_model
        ... def pointnet2_ssg_cls(): ...
        Traceback (most recent call last):
        ...
        ValueError: model 'pointnet2_ssg_cls' registered twice
    """
    name = fn.__name__
    if name in _MODELS:
        raise ValueError(f"model {name!r} registered twice")
    _MODELS[name] = fn
    return fn


def model_factory(name: str) -> Callable[..., nn.Module]:
    """The factory registered under ``name`` (ValueError listing the known names)."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(_MODELS)}")
    return _MODELS[name]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name`` with keyword ``overrides``.

    Example:
        >>> m = create_model("dgcnn_lite_cls", num_classes=10)
        >>> type(m).__name__
        'PointClassifier'
    """
    return model_factory(name)(**overrides)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted registered names matching a shell-style ``pattern``.

    Example:
        >>> list_models("dgcnn_*cls")
        ['dgcnn_cls', 'dgcnn_lite_cls']
    """
    return sorted(n for n in _MODELS if fnmatch(n, pattern))
