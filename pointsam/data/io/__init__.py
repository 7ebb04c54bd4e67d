r"""Readers for single point-cloud, mesh and label files.

:func:`read_cloud` dispatches on the suffix and returns a PyG ``Data`` with
``pos`` float32 :math:`(N, 3)`, ``x`` float32 :math:`(N, C)` when the file holds
per-point features (normals, then colours in [0, 1], then intensity), and ``y``
int64 :math:`(N)` when it holds per-point labels. ``data.fields`` names the
columns of ``x``.

==========================  =====================================================
``.ply``                    ASCII / binary vertex element (plyfile); other
                            layouts through Open3D
``.pcd``                    ASCII and binary read directly; ``binary_compressed``
                            through Open3D
``.xyz`` ``.txt`` ``.pts``  whitespace or comma separated, 3 + C columns
``.npy``                    :math:`(N, 3 + C)` array
``.bin``                    KITTI Velodyne float32 :math:`(N, 4)` x, y, z, remission;
                            nuScenes ``*.pcd.bin`` :math:`(N, 5)`; ``bin_columns``
                            for other widths (6 for xyzrgb)
``.las`` ``.laz``           laspy; ``pos`` is relative to ``data.origin``
                            (float64 :math:`(1, 3)`, the floor of the minimum
                            corner) so float32 keeps centimetres; ``y`` is the
                            ASPRS classification, ``x`` the intensity
``.off``                    a mesh: use :func:`read_off`
==========================  =====================================================

Every reader raises :class:`CloudFormatError` naming the file for an empty or
truncated file, a bad header, or NaN/Inf coordinates.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from torch_geometric.data import Data

from .._common import CloudFormatError, make_data
from ._util import PathLike
from .kitti import read_kitti_bin, read_kitti_label
from .las import read_las
from .off import read_off, sample_surface
from .pcd import read_pcd
from .ply import read_ply
from .text import read_xyz

__all__ = [
    "read_cloud",
    "read_off",
    "read_pcd",
    "read_ply",
    "read_kitti_bin",
    "read_kitti_label",
    "read_las",
    "read_xyz",
    "sample_surface",
]

_BIN_FIELDS = {4: ["remission"], 5: ["intensity", "ring"]}
_BIN_MAX_COORD = 1e5  # metres: larger coordinates mean a wrong column count


def _bin_columns(path: Path) -> int:
    """Default float32 columns of a ``.bin`` scan: 5 for nuScenes ``*.pcd.bin``."""
    return 5 if path.name.lower().endswith(".pcd.bin") else 4


def _in_colour_range(v: np.ndarray) -> bool:
    lo, hi = float(v.min(initial=0.0)), float(v.max(initial=0.0))
    return lo >= 0.0 and (hi <= 1.0 or hi <= 255.0)


def _looks_xyzrgb(arr4: np.ndarray) -> bool:
    """Whether a ``.bin`` read as ``(N, 4)`` is rather ``(M, 6)`` x y z r g b.

    Read with 4 columns, a 6-column file shifts by two values per row, so the
    4th column mixes colours and coordinates: it leaves [0, 255] (a negative
    coordinate, say), which a remission or intensity never does; read with 6
    columns, the last three fall in a colour range. Both must hold (and the
    size must be a multiple of 24 bytes) to warn.
    """
    flat = arr4.reshape(-1)
    if flat.size % 6 or flat.size < 12:
        return False
    if _in_colour_range(arr4[:, 3]):
        return False
    six = flat.reshape(-1, 6)
    return bool(np.isfinite(six).all()) and _in_colour_range(six[:, 3:])


def read_cloud(path: PathLike, *, bin_columns: int | None = None) -> Data:
    """Read one point cloud of any supported format into a ``Data`` (see module doc).

    A ``.bin`` scan is float32 with ``bin_columns`` values per point: by default
    4 (KITTI / SemanticKITTI x, y, z, remission), or 5 for nuScenes ``*.pcd.bin``
    (x, y, z, intensity, ring); other layouts (6 for the xyzrgb ``.bin`` of S3DIS,
    ScanNet, SUN RGB-D, or Waymo in KITTI format) need ``bin_columns``. With the
    default, a file whose size does not fit, or whose coordinates come out
    non-finite or beyond 100 km, is a :class:`CloudFormatError` that says so,
    and one that looks like 6 columns x y z r g b (a 4th column outside
    [0, 1] and [0, 255], colour-like columns when read with 6) gets a
    ``UserWarning`` that says so.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.xyz"
        >>> _ = p.write_text("0 0 0 1\\n1 0 0 2\\n")
        >>> d = read_cloud(p)
        >>> d.pos.shape, d.x.tolist()
        (torch.Size([2, 3]), [[1.0], [2.0]])
    """
    path = Path(path)
    suf = path.suffix.lower()
    if suf == ".ply":
        return read_ply(path)
    if suf == ".pcd":
        return read_pcd(path)
    if suf in (".xyz", ".txt", ".pts", ".csv"):
        arr = read_xyz(path)
        if arr.shape[1] < 3:
            raise CloudFormatError(
                f"{path}: needs at least 3 columns, has {arr.shape[1]}"
            )
        return make_data(
            arr[:, :3],
            source=path,
            x=arr[:, 3:] if arr.shape[1] > 3 else None,
            fields=[],
        )
    if suf == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise CloudFormatError(
                f"{path}: not a readable .npy array ({err})"
            ) from err
        if arr.ndim != 2 or arr.shape[1] < 3:
            raise CloudFormatError(f"{path}: .npy must be [N, 3 + C], got {arr.shape}")
        return make_data(
            arr[:, :3],
            source=path,
            x=arr[:, 3:] if arr.shape[1] > 3 else None,
            fields=[],
        )
    if suf == ".bin":
        cols = _bin_columns(path) if bin_columns is None else bin_columns
        if isinstance(cols, bool) or not isinstance(cols, int) or cols < 3:
            raise ValueError(f"bin_columns must be an integer >= 3, got {cols!r}")
        hint = ("" if bin_columns is not None else
                f" (read with the default {cols} float32 columns; pass bin_columns "
                "for another layout, e.g. 6 for xyzrgb)")
        try:
            arr = read_kitti_bin(path, cols)
        except CloudFormatError as err:
            raise CloudFormatError(f"{err}{hint}") from None
        if bin_columns is None:
            xyz = arr[:, :3]
            if not bool(np.isfinite(xyz).all()) or \
                    float(np.abs(xyz).max(initial=0.0)) > _BIN_MAX_COORD:
                raise CloudFormatError(
                    f"{path}: coordinates are non-finite or beyond "
                    f"{_BIN_MAX_COORD:.0e} m{hint}")
            if cols == 4 and _looks_xyzrgb(arr):
                warnings.warn(
                    f"{path}: read as 4 float32 columns (x y z remission), but "
                    "the 4th column is no remission (outside [0, 1] and "
                    "[0, 255]) while as 6 columns the last three look like "
                    "colours: is it x y z r g b? Pass bin_columns=6 "
                    "(--bin-columns 6)", stacklevel=2)
        return make_data(
            arr[:, :3],
            source=path,
            x=arr[:, 3:] if cols > 3 else None,
            fields=_BIN_FIELDS.get(cols, []),
        )
    if suf in (".las", ".laz"):
        return read_las(path)
    if suf == ".off":
        raise ValueError(
            f"{path}: an OFF file is a mesh; use read_off and "
            "sample_surface (or the ModelNet dataset)"
        )
    raise ValueError(
        f"{path}: unknown point-cloud suffix {suf!r}; supported: .ply "
        ".pcd .xyz .txt .pts .csv .npy .bin .las .laz"
    )
