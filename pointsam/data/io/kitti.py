r"""KITTI Velodyne ``.bin`` scans and SemanticKITTI ``.label`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._common import CloudFormatError
from ._util import PathLike

__all__ = ["read_kitti_bin", "read_kitti_label"]


def read_kitti_bin(path: PathLike, columns: int = 4) -> np.ndarray:
    """Read a Velodyne ``.bin`` scan: float32 :math:`(N, columns)` (x, y, z, remission).

    Raises :class:`CloudFormatError` naming the file when its size is not a
    multiple of ``4 * columns`` bytes (a truncated scan).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise CloudFormatError(f"{path}: empty file")
    if size % (4 * columns):
        raise CloudFormatError(
            f"{path}: truncated or malformed scan, {size} bytes is not a multiple of "
            f"{4 * columns} (float32 x {columns} columns)"
        )
    return np.fromfile(path, dtype="<f4").reshape(-1, columns)


def read_kitti_label(
    path: PathLike, num_points: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a SemanticKITTI ``.label``: (semantic = low 16 bits, instance = high 16).

    Raises :class:`CloudFormatError` naming the file when its length is not a
    multiple of 4 bytes or differs from ``num_points``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size % 4:
        raise CloudFormatError(f"{path}: {size} bytes is not a multiple of 4 (uint32)")
    lab = np.fromfile(path, dtype="<u4")
    if num_points is not None and lab.size != num_points:
        raise CloudFormatError(
            f"{path}: label length mismatch, {lab.size} labels for a scan of "
            f"{num_points} points"
        )
    return (lab & 0xFFFF).astype(np.int64), (lab >> 16).astype(np.int64)
