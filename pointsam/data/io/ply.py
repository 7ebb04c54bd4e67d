r"""The one PLY reader and writer of pointsam, built on ``plyfile``.

:func:`read_ply_vertices` returns the properties of a PLY's ``vertex`` element
(ASCII, binary little or big endian) as native-endian numpy arrays, keeping any
custom property (``weight``, ``label``, ``pred`` ...); :func:`write_ply_vertices`
writes such a table as binary little-endian. :func:`read_ply` (point clouds as PyG
``Data``) and :mod:`pointsam.viz.export` (coloured exports
with raw weights) are both built on these two functions.

Every problem is a :class:`~pointsam.data.CloudFormatError` (a ``ValueError``)
naming the file: an empty file, no ``ply`` magic or no ``end_header`` line (the
header ends at the first line that is *exactly* ``end_header``, so a comment may
contain those words), an unknown format or property type, a truncated body;
:class:`PlyLayoutError` when the first element is not a list-free ``vertex``
element (a layout these readers leave to Open3D).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
from plyfile import (
    PlyData,
    PlyElement,
    PlyElementParseError,
    PlyHeaderParseError,
    PlyListProperty,
)
from torch_geometric.data import Data

from ..._atomic import atomic_write
from .._common import CloudFormatError, make_data
from ._util import PathLike, read_bytes, read_open3d

__all__ = ["PlyLayoutError", "read_ply", "read_ply_vertices", "write_ply_vertices"]


class PlyLayoutError(CloudFormatError):
    """The PLY's first element is not a ``vertex`` element without list properties."""


def _body_offset(raw: bytes) -> int:
    """Byte offset just after the ``end_header`` line (for error messages)."""
    start = 0
    while (nl := raw.find(b"\n", start)) >= 0:
        line, start = raw[start:nl].rstrip(b"\r"), nl + 1
        if line.strip() == b"end_header":
            return start
    return len(raw)


def read_ply_vertices(path: str | os.PathLike[str]
                      ) -> tuple[dict[str, np.ndarray], list[str]]:
    r"""The ``vertex`` properties of a PLY file, and its header comments.

    Returns:
        ``(props, comments)``: ``props`` maps each vertex property, in file order,
        to a native-endian array :math:`(N)` of the file's type; ``comments`` are
        the header comment lines without the ``comment`` keyword.

    Raises:
        FileNotFoundError: no such file.
        PlyLayoutError: the first element is not ``vertex``, or it has a list
            property.
        CloudFormatError: anything else that makes the file unreadable (the
            message names the file and the problem).

    Example:
        >>> import tempfile
        >>> p = f"{tempfile.mkdtemp()}/a.ply"
        >>> _ = write_ply_vertices(p, {"x": np.zeros(2, "f4"),
        ...                                 "label": np.arange(2, dtype="i4")})
        >>> props, comments = read_ply_vertices(p)
        >>> list(props), props["label"].tolist(), props["label"].dtype
        (['x', 'label'], [0, 1], dtype('int32'))
    """
    path = Path(path)
    raw = read_bytes(path)
    ply_format = "binary"
    if b"format ascii" in raw[: _body_offset(raw)]:
        ply_format = "ascii"
    try:
        ply = PlyData.read(BytesIO(raw), mmap=False)
    except PlyHeaderParseError as err:
        msg = str(err)
        if "don't understand format" in msg:
            raise CloudFormatError(f"{path}: unsupported (unknown) PLY format "
                                   f"({msg})") from None
        if "field type" in msg:
            raise CloudFormatError(f"{path}: unknown PLY property type "
                                   f"({msg})") from None
        raise CloudFormatError(
            f"{path}: bad PLY header, not a PLY file (no 'ply' magic / end_header "
            f"line, or a malformed header line: {msg})") from None
    except PlyElementParseError as err:
        elt = err.element
        if elt is None or err.message not in ("early end-of-file", "early end-of-line"):
            raise CloudFormatError(f"{path}: malformed PLY {ply_format} data "
                                   f"({err})") from None
        if ply_format == "ascii" or any(isinstance(q, PlyListProperty)
                                        for q in elt.properties):
            raise CloudFormatError(
                f"{path}: truncated PLY, {elt.count} {elt.name} rows promised, the "
                f"data ends in row {err.row} ({err.message})") from None
        body = len(raw) - _body_offset(raw)
        raise CloudFormatError(
            f"{path}: truncated PLY, {elt.count} {elt.name} rows need "
            f"{elt.count * elt.dtype().itemsize} bytes, found {body} after the "
            "header") from None
    if len(ply.elements) == 0 or ply.elements[0].name != "vertex":
        raise PlyLayoutError(f"{path}: the first element must be 'vertex'")
    vertex = ply.elements[0]
    if any(isinstance(p, PlyListProperty) for p in vertex.properties):
        raise PlyLayoutError(f"{path}: list property in the vertex element")
    data = vertex.data
    props = {
        name: np.ascontiguousarray(data[name]).astype(
            data.dtype[name].newbyteorder("="), copy=False)
        for name in data.dtype.names
    }
    return props, list(ply.comments)


def write_ply_vertices(path: str | os.PathLike[str], props: Mapping[str, np.ndarray],
                       comments: Sequence[str] = ()) -> Path:
    """Write ``name -> [N]`` arrays as the ``vertex`` element of a binary PLY.

    Each array keeps its dtype (``float32`` -> ``float``, ``uint8`` -> ``uchar``,
    ``int32`` -> ``int`` ...); the file is little-endian. Folders are created.
    The file is written atomically (:func:`pointsam._atomic.atomic_write`).

    Raises:
        ValueError: arrays of different lengths, a dtype PLY has no type for
            (int64, say), or a comment that is not one ASCII line.
        OutOfSpaceError: the disk filled up (the previous file is kept).
    """
    arrays = {k: np.asarray(v) for k, v in props.items()}
    sizes = {v.shape for v in arrays.values()}
    if len(sizes) > 1 or any(len(s) != 1 for s in sizes):
        raise ValueError(f"PLY vertex properties must all be [N], got shapes "
                         f"{ {k: v.shape for k, v in arrays.items()} }")
    for c in comments:
        if not isinstance(c, str) or "\n" in c or "\r" in c or not c.isascii():
            raise ValueError(f"a PLY comment must be one ASCII line (no newline), "
                             f"got {c!r}")
    bad = {k: str(v.dtype) for k, v in arrays.items() if v.dtype.str[1:] not in
           ("i1", "i2", "i4", "u1", "u2", "u4", "f4", "f8")}
    if bad:
        raise ValueError(f"PLY has no type for {bad} (int8..int32, uint8..uint32, "
                         "float32, float64)")
    n = next(iter(sizes))[0] if sizes else 0
    rec = np.empty(n, dtype=[(k, v.dtype.newbyteorder("<")) for k, v in arrays.items()])
    for k, v in arrays.items():
        rec[k] = v
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ply = PlyData([PlyElement.describe(rec, "vertex")], text=False, byte_order="<",
                  comments=list(comments))
    with atomic_write(path) as f:  # a full disk keeps the previous file
        ply.write(f)
    return path


def read_ply(path: PathLike) -> Data:
    """Read the vertex element of a PLY file (ASCII or binary, little or big endian).

    Properties ``x y z`` give ``pos``; ``nx ny nz``, ``red green blue`` (uchar,
    scaled to [0, 1]), ``intensity``/``scalar_intensity`` give ``x``; ``label``,
    ``class`` or ``scalar_label`` gives ``y``. The file is parsed by
    :func:`read_ply_vertices` (plyfile); files whose first
    element is not a list-free ``vertex`` element are read through Open3D.
    """
    path = Path(path)
    try:
        rec, _ = read_ply_vertices(path)
    except PlyLayoutError:
        return read_open3d(path)
    if not {"x", "y", "z"} <= rec.keys():
        raise CloudFormatError(f"{path}: PLY vertex has no x y z properties")
    pos = np.stack([rec["x"], rec["y"], rec["z"]], 1).astype(np.float64)  # [N, 3]
    feats, fields = [], []
    if {"nx", "ny", "nz"} <= rec.keys():
        feats.append(np.stack([rec["nx"], rec["ny"], rec["nz"]], 1))
        fields += ["nx", "ny", "nz"]
    if {"red", "green", "blue"} <= rec.keys():
        feats.append(np.stack([rec["red"], rec["green"], rec["blue"]], 1) / 255.0)
        fields += ["r", "g", "b"]
    for k in ("intensity", "scalar_intensity", "remission", "reflectance"):
        if k in rec:
            feats.append(np.asarray(rec[k]).reshape(-1, 1))
            fields.append("intensity")
            break
    y = None
    for k in ("label", "class", "scalar_label", "semantic"):
        if k in rec:
            y = np.asarray(rec[k]).astype(np.int64)
            break
    x = np.concatenate(feats, 1) if feats else None
    return make_data(pos, source=path, x=x, y=y, fields=fields)
