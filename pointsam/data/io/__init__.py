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
``.bin``                    float32 :math:`(N, C)`: KITTI x, y, z, remission
                            (4), nuScenes ``*.pcd.bin`` (5), Waymo-as-KITTI or
                            xyzrgb (6), the width judged from the data
                            (:func:`infer_bin_columns`) or ``bin_columns``
``.las`` ``.laz``           laspy; ``pos`` is relative to ``data.origin``
                            (float64 :math:`(1, 3)`, the floor of the minimum
                            corner) so float32 keeps centimetres; ``y`` is the
                            ASPRS classification, ``x`` the intensity
``.off``                    a mesh: use :func:`read_off`
==========================  =====================================================

:func:`read_cloud` returns what the file holds, in the file's own frame.
Readers of a dataset whose convention differs from the canonical one (z up)
convert it: :func:`read_normal_resampled` turns PointNet++'s y-up ModelNet
files z up; :class:`~pointsam.data.transforms.UpAxisToZ` does so for a cloud
of known up axis.

Every reader raises :class:`CloudFormatError` naming the file for an empty or
truncated file, a bad header, or NaN/Inf coordinates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch_geometric.data import Data

from .._common import CloudFormatError, make_data
from ._util import PathLike
from .kitti import infer_bin_columns, read_kitti_bin, read_kitti_label
from .las import read_las
from .off import read_off, sample_surface
from .pcd import read_pcd
from .ply import read_ply
from .text import read_normal_resampled, read_xyz

__all__ = [
    "read_cloud",
    "read_off",
    "read_pcd",
    "read_ply",
    "read_kitti_bin",
    "read_kitti_label",
    "infer_bin_columns",
    "read_normal_resampled",
    "read_las",
    "read_xyz",
    "sample_surface",
]

_BIN_FIELDS = {4: ["remission"], 5: ["intensity", "ring"]}


def _bin_columns(path: Path) -> int:
    """Preferred float32 columns of a ``.bin`` scan: 5 for nuScenes ``*.pcd.bin``."""
    return 5 if path.name.lower().endswith(".pcd.bin") else 4


def read_cloud(path: PathLike, *, bin_columns: int | None = None) -> Data:
    """Read one point cloud of any supported format into a ``Data`` (see module doc).

    A ``.bin`` scan is float32 with ``bin_columns`` values per point. Without
    it, the width is judged from the data (:func:`infer_bin_columns`): each of
    4 (KITTI / SemanticKITTI x, y, z, remission), 5 (nuScenes x, y, z,
    intensity, ring) and 6 (Waymo in KITTI format, xyzrgb of S3DIS, ScanNet,
    SUN RGB-D) that fits the file size is read, and the one reading that looks
    like a sensor scan is kept; a file where none or several do is a
    :class:`CloudFormatError` that lists them. ``data.fields`` names the
    features of widths 4 (remission) and 5 (intensity, ring).

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
        if bin_columns is None:
            cols = infer_bin_columns(path, default=_bin_columns(path))
        else:
            cols = bin_columns
            if isinstance(cols, bool) or not isinstance(cols, int) or cols < 3:
                raise ValueError(f"bin_columns must be an integer >= 3, got {cols!r}")
        arr = read_kitti_bin(path, cols)  # [N, cols]
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
