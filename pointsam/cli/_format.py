"""Printing helpers shared by the commands."""

from __future__ import annotations

from typing import Any

__all__ = ["fmt"]


def fmt(d: dict[str, Any]) -> str:
    """``key=value`` pairs of the scalar entries of ``d`` (floats to 4 places).

    Example:
        >>> fmt({"oa": 0.5, "epoch": 3, "confusion": [[1]], "split": "test"})
        'oa=0.5000, epoch=3'
    """
    return ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in d.items()
        if not isinstance(v, (list, dict)) and k not in ("split",)
    )
