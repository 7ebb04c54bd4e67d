"""Helpers shared by the readers: path type, the raw read with its checks, Open3D."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch_geometric.data import Data

from .._common import CloudFormatError, make_data

__all__ = ["PathLike", "read_bytes", "read_open3d"]

PathLike = str | os.PathLike[str]


def read_bytes(path: Path) -> bytes:
    """The bytes of ``path``; ``FileNotFoundError`` or ``CloudFormatError`` if empty."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    if not raw.strip():
        raise CloudFormatError(f"{path}: empty file")
    return raw


def read_open3d(path: Path) -> Data:
    """Points, normals and colours of any file Open3D's legacy reader takes."""
    import open3d as o3d

    pcd = o3d.io.read_point_cloud(str(path))
    pos = np.asarray(pcd.points)
    if pos.shape[0] == 0:
        raise CloudFormatError(f"{path}: Open3D read no points (empty or malformed)")
    feats, fields = [], []
    if pcd.has_normals():
        feats.append(np.asarray(pcd.normals))
        fields += ["nx", "ny", "nz"]
    if pcd.has_colors():
        feats.append(np.asarray(pcd.colors))
        fields += ["r", "g", "b"]
    x = np.concatenate(feats, 1) if feats else None
    return make_data(pos, source=path, x=x, fields=fields)
