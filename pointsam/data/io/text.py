r"""Whitespace- or comma-separated text tables (``.xyz .txt .pts .csv``), and
PointNet++'s resampled ModelNet shapes (y up, turned z up)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .._common import CloudFormatError
from ..transforms import UP_AXIS_ROTATIONS
from ._util import PathLike, read_bytes

__all__ = ["read_xyz", "read_normal_resampled"]


def read_xyz(path: PathLike, *, delimiter: str | None = None) -> np.ndarray:
    """Read a text table (whitespace or comma separated) as float64 :math:`(N, C)`.

    Raises :class:`CloudFormatError` naming the file when rows differ in length or
    hold non-numbers.
    """
    path = Path(path)
    text = read_bytes(path).decode("ascii", errors="replace")
    rows = [
        ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    if not rows:
        raise CloudFormatError(f"{path}: empty file")
    sep = delimiter if delimiter is not None else ("," if "," in rows[0] else None)
    split = (lambda r: re.split(r"[,\s]+", r.strip())) if sep == "," else str.split
    widths = np.fromiter((len(split(r)) for r in rows), dtype=np.int64,
                         count=len(rows))  # [N]
    width = int(widths[0])
    if bool((widths != width).any()):
        bad = int(np.nonzero(widths != width)[0][0])
        raise CloudFormatError(
            f"{path}: rows have different numbers of columns (first row has {width}, "
            f"data row {bad + 1} has {int(widths[bad])})"
        )
    try:
        flat = np.array(
            re.split(r"[,\s]+", " ".join(rows).strip())
            if sep == ","
            else " ".join(rows).split(),
            dtype=np.float64,
        )
    except ValueError:
        raise CloudFormatError(f"{path}: non-numeric values in the table") from None
    if flat.size != width * len(rows):
        raise CloudFormatError(
            f"{path}: rows have different numbers of columns (first row has {width})"
        )
    return flat.reshape(len(rows), width)


def read_normal_resampled(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    r"""Read one ``modelnet40_normal_resampled`` shape into the canonical frame, z up.

    The files (``x,y,z,nx,ny,nz`` rows) are y up, whereas the ModelNet OFF
    meshes and their PCD conversions are z up. Points and normals are turned by
    the proper rotation of a y-up cloud (+90 deg about x,
    :data:`~pointsam.data.transforms.UP_AXIS_ROTATIONS` ``["y"]``,
    :math:`\det R = +1`):

    .. math::
        (x, y, z) \mapsto (x, -z, y), \qquad
        (n_x, n_y, n_z) \mapsto (n_x, -n_z, n_y)

    (Matched against the PCD copies of the same shapes, the files are the
    originals with y and z swapped, a mirror image; :math:`R` gives the
    originals up to a mirror in y, z up either way.)

    Returns:
        ``(pos, normals)``, float64 :math:`(N, 3)` each.

    Raises:
        CloudFormatError: fewer than 6 columns, or a malformed table.
    """
    path = Path(path)
    arr = read_xyz(path, delimiter=",")  # [N, C]
    if arr.shape[1] < 6:
        raise CloudFormatError(
            f"{path}: expected 6 columns x,y,z,nx,ny,nz, found {arr.shape[1]}"
        )
    r = np.asarray(UP_AXIS_ROTATIONS["y"])  # [3, 3]
    return arr[:, :3] @ r.T, arr[:, 3:6] @ r.T  # [N, 3], [N, 3]
