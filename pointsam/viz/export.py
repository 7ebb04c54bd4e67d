r"""Coloured PLY export that keeps the raw weights as per-point properties.

:func:`export_ply` writes a binary little-endian PLY (written by hand, no
dependency) with ``x y z`` (float32), ``red green blue`` (uchar) and one float32
property per weight (``weight``, ``axis_x`` ...) plus optional int32 ``label``
and ``pred``. CloudCompare, MeshLab, Open3D (points and colours) and
:func:`read_ply` read it; a viewer can re-colour the points from the raw weight.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .colors import colormap, to_numpy

__all__ = ["export_ply", "read_ply"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
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

    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
              ("red", "u1"), ("green", "u1"), ("blue", "u1")]
    fields += [(k, "<f4") for k in props] + [(k, "<i4") for k in ints]
    rec = np.empty(n, dtype=np.dtype(fields))
    rec["x"], rec["y"], rec["z"] = p[:, 0], p[:, 1], p[:, 2]
    rec["red"], rec["green"], rec["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    for k, v in props.items():
        rec[k] = v
    for k, a in ints.items():
        if a.size and (a.min() < -2**31 or a.max() >= 2**31):
            raise ValueError(f"{k} does not fit in int32")
        rec[k] = a
    ply_type = {"<f4": "float", "u1": "uchar", "<i4": "int"}
    for c in comments:
        if not isinstance(c, str) or "\n" in c or "\r" in c or not c.isascii():
            raise ValueError(f"a PLY comment must be one ASCII line (no newline), "
                             f"got {c!r}")
    header = ["ply", "format binary_little_endian 1.0",
              "comment written by pointsam.viz.export_ply"]
    header += [f"comment {c}" for c in comments] + [f"element vertex {n}"]
    header += [f"property {ply_type[t]} {name}" for name, t in fields]
    header.append("end_header")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode("ascii"))
        f.write(rec.tobytes())
    return path


def _split_header(data: bytes, path: Path) -> tuple[list[str], bytes]:
    """``(header lines between 'ply' and 'end_header', body bytes)`` of a PLY.

    The header is read line by line (``\\n``, optionally ``\\r\\n``): it ends at
    the first line that is exactly ``end_header``, so a comment that merely
    contains those words does not end it.
    """
    lines: list[str] = []
    start = 0
    while True:
        nl = data.find(b"\n", start)
        if nl < 0:
            raise ValueError(f"{path} is not a PLY file (no 'ply' magic / "
                             "end_header line)")
        line = data[start:nl].rstrip(b"\r").decode("ascii", "replace")
        start = nl + 1
        if not lines and line.strip() != "ply":
            raise ValueError(f"{path} is not a PLY file (no 'ply' magic / "
                             "end_header line)")
        if line.strip() == "end_header":
            return lines[1:], data[start:]
        lines.append(line)


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
            truncated body.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    header, body = _split_header(data, path)
    fmt, elements = "", []  # [(name, count, [(prop, dtype)])]
    for line in header:
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            fmt = tok[1]
        elif tok[0] == "element":
            elements.append((tok[1], int(tok[2]), []))
        elif tok[0] == "property":
            if tok[1] == "list":
                if elements and elements[-1][0] == "vertex":
                    raise ValueError(f"{path}: list property in the vertex element")
                elements[-1][2].append((tok[-1], None))
            else:
                if tok[1] not in _PLY_TYPES:
                    raise ValueError(f"{path}: unknown PLY type {tok[1]!r}")
                elements[-1][2].append((tok[2], _PLY_TYPES[tok[1]]))
    if fmt not in ("binary_little_endian", "binary_big_endian", "ascii"):
        raise ValueError(f"{path}: unsupported PLY format {fmt!r}")
    if not elements or elements[0][0] != "vertex":
        raise ValueError(f"{path}: the first element must be 'vertex'")
    _, n, props = elements[0]
    if fmt == "ascii":
        rows = body.decode("ascii").split("\n")[:n]
        if len(rows) < n:
            raise ValueError(f"{path}: truncated, {len(rows)} of {n} vertex rows")
        table = np.array([r.split()[:len(props)] for r in rows], dtype=np.float64)
        out = {name: table[:, i].astype(t) for i, (name, t) in enumerate(props)}
    else:
        e = "<" if fmt == "binary_little_endian" else ">"
        dt = np.dtype([(name, e + t) for name, t in props])
        if len(body) < dt.itemsize * n:
            raise ValueError(f"{path}: truncated, {len(body)} bytes for {n} "
                             f"vertices of {dt.itemsize} bytes")
        rec = np.frombuffer(body, dtype=dt, count=n)
        out = {name: rec[name].astype(rec[name].dtype.newbyteorder("="))
               for name, _ in props}
    if all(k in out for k in ("x", "y", "z")):
        out["pos"] = np.stack([out["x"], out["y"], out["z"]], 1).astype(np.float64)
    if all(k in out for k in ("red", "green", "blue")):
        out["colors"] = np.stack([out["red"], out["green"], out["blue"]],
                                 1).astype(np.float64) / 255.0
    return out
