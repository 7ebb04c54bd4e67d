r"""Coloured PLY export that keeps the raw weights as per-point properties.

:func:`export_ply` writes a binary little-endian PLY with ``x y z`` (float32),
``red green blue`` (uchar) and one float32 property per weight (``weight``,
``axis_x`` ...) plus optional int32 ``label`` and ``pred``. CloudCompare,
MeshLab, Open3D (points and colours) and :func:`read_ply` read it; a viewer can
re-colour the points from the raw weight. Both sides go through pointsam's one
PLY implementation, :mod:`pointsam.data.io.ply` (plyfile).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pointsam.data.io.ply import read_ply_vertices, write_ply_vertices

from .colors import colormap, to_numpy

__all__ = ["export_ply", "read_ply"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {"x", "y", "z", "red", "green", "blue"}


def export_ply(path: str | Path, pos: Any, *, colors: Any = None,
               weights: Any = None, labels: Any = None, pred: Any = None,
               cmap: str = "viridis", vmin: float | None = None,
               vmax: float | None = None, comments: Sequence[str] = ()) -> Path:
    r"""Write points, colours and raw weights to a binary PLY.

    Args:
        path: Output file (``.ply``); folders are created.
        pos: Points ``[N, 3]``.
        colors: RGB ``[N, 3]`` in :math:`[0, 1]` (default: the weights through
            ``cmap``, or grey when there are none).
        weights: ``[N]`` (written as property ``weight``), ``[N, D]`` (written as
            ``weight_0`` ... ``weight_{D-1}``) or a dict ``name -> [N]`` of
            scalar properties. ``NaN`` is kept as ``NaN``.
        labels: Integer ground-truth labels ``[N]`` (property ``label``).
        pred: Integer predictions ``[N]`` (property ``pred``).
        cmap: Colour map used when ``colors`` is not given.
        vmin: Low end of that colour scale.
        vmax: High end of that colour scale.
        comments: Extra header comment lines (one line each, ASCII, no ``\n`` or
            ``\r``; a comment may contain the words ``end_header``).

    Returns:
        The path written.

    Example:
        >>> import tempfile, torch
        >>> p = export_ply(f"{tempfile.mkdtemp()}/a.ply", torch.rand(5, 3),
        ...                weights=torch.arange(5.0))
        >>> read_ply(p)["weight"].tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    p = to_numpy(pos, np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"pos must be [N, 3], got shape {tuple(p.shape)}")
    if not np.all(np.isfinite(p)):
        raise ValueError("pos holds NaN or Inf coordinates")
    n = len(p)
    props: dict[str, np.ndarray] = {}
    if weights is not None:
        if isinstance(weights, Mapping):
            items = {str(k): to_numpy(v, np.float64) for k, v in weights.items()}
        else:
            w = to_numpy(weights, np.float64)
            if w.ndim == 2 and w.shape[1] == 1:
                w = w[:, 0]
            items = ({"weight": w} if w.ndim == 1
                     else {f"weight_{i}": w[:, i] for i in range(w.shape[1])}
                     if w.ndim == 2 else {"weight": w})
        for k, v in items.items():
            if not _NAME.match(k) or k in _RESERVED or k in ("label", "pred"):
                raise ValueError(f"bad weight property name {k!r} (letters, digits "
                                 "and _, not x/y/z/red/green/blue/label/pred)")
            v = v.reshape(-1) if v.ndim == 2 and v.shape[1] == 1 else v
            if v.shape != (n,):
                raise ValueError(f"weight {k!r} must be [{n}], got "
                                 f"{tuple(v.shape)}")
            props[k] = v
    ints: dict[str, np.ndarray] = {}
    for k, v in (("label", labels), ("pred", pred)):
        if v is not None:
            a = to_numpy(v).reshape(-1)
            if a.shape != (n,):
                raise ValueError(f"{k} must be [{n}], got {tuple(a.shape)}")
            if not np.issubdtype(a.dtype, np.integer):
                if not np.all(a == np.round(a)):
                    raise ValueError(f"{k} must hold integers")
            ints[k] = a.astype(np.int64)
    if colors is not None:
        c = to_numpy(colors, np.float64)
        if c.shape != (n, 3):
            raise ValueError(f"colors must be [{n}, 3], got {tuple(c.shape)}")
    elif props:
        c = colormap(next(iter(props.values())), vmin, vmax, cmap=cmap)
    else:
        c = np.full((n, 3), 0.78)
    rgb = (np.clip(c, 0.0, 1.0) * 255).round().astype(np.uint8)  # [N, 3]

    columns: dict[str, np.ndarray] = {
        "x": p[:, 0].astype(np.float32), "y": p[:, 1].astype(np.float32),
        "z": p[:, 2].astype(np.float32),
        "red": rgb[:, 0], "green": rgb[:, 1], "blue": rgb[:, 2]}
    columns.update({k: v.astype(np.float32) for k, v in props.items()})
    for k, a in ints.items():
        if a.size and (a.min() < -2**31 or a.max() >= 2**31):
            raise ValueError(f"{k} does not fit in int32")
        columns[k] = a.astype(np.int32)
    return write_ply_vertices(
        path, columns, ["written by pointsam.viz.export_ply", *comments])


def read_ply(path: str | Path) -> dict[str, np.ndarray]:
    """Read the vertex properties of a PLY (binary little/big-endian or ASCII).

    Returns:
        ``name -> [N]`` arrays in the file's types, plus ``pos`` ``[N, 3]``
        float64 and, when present, ``colors`` ``[N, 3]`` float64 in
        :math:`[0, 1]`.

    The header ends at the first line that is exactly ``end_header`` (comments
    may contain those words).

    Raises:
        ValueError: not a PLY, a list property in the vertex element, or a
            truncated body (a :class:`~pointsam.data.CloudFormatError`, from
            :func:`pointsam.data.io.ply.read_ply_vertices`).
    """
    out, _ = read_ply_vertices(path)
    if all(k in out for k in ("x", "y", "z")):
        out["pos"] = np.stack([out["x"], out["y"], out["z"]], 1).astype(np.float64)
    if all(k in out for k in ("red", "green", "blue")):
        out["colors"] = np.stack([out["red"], out["green"], out["blue"]],
                                 1).astype(np.float64) / 255.0
    return out
