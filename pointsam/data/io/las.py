r"""LAS/LAZ airborne scans through laspy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch_geometric.data import Data

from .._common import CloudFormatError, make_data
from ._util import PathLike, read_bytes

__all__ = ["read_las"]


def read_las(path: PathLike) -> Data:
    """Read a LAS/LAZ file with laspy (``pip install laspy``).

    ``pos`` = coordinates minus ``data.origin`` (float64 :math:`(1, 3)`, the floor of
    the minimum corner), ``x`` = intensity, ``y`` = ASPRS classification.
    """
    path = Path(path)
    try:
        import laspy
    except ImportError:  # pragma: no cover - laspy is in the dev extras
        raise ImportError(f"reading {path} needs laspy: pip install laspy") from None
    read_bytes(path)
    try:
        las = laspy.read(str(path))
    except Exception as err:  # laspy raises its own error types
        raise CloudFormatError(f"{path}: malformed LAS file ({err})") from err
    xyz = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], 1)
    if xyz.shape[0] == 0:
        raise CloudFormatError(f"{path}: empty cloud (0 points)")
    origin = np.floor(xyz.min(0, keepdims=True))  # [1, 3]
    import torch

    return make_data(
        xyz - origin,
        source=path,
        x=np.asarray(las.intensity, dtype=np.float32).reshape(-1, 1),
        y=np.asarray(las.classification, dtype=np.int64),
        fields=["intensity"],
        origin=torch.from_numpy(origin),
    )
