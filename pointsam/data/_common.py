"""Shared helpers of the dataset classes: roots, caches, errors, sample assembly."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from .._atomic import atomic_write

__all__ = [
    "concat_frames",
    "CloudFormatError",
    "DatasetNotFoundError",
    "README_HINT",
    "data_root",
    "cache_dir_for",
    "save_npy_atomic",
    "make_data",
    "IGNORE_INDEX",
]

#: Label of points that the losses and metrics skip (``ignore_index`` in the engine).
IGNORE_INDEX = -1

README_HINT = (
    "see datasets/README.md in the pointsam repository for where to get "
    "it and the exact layout"
)


class CloudFormatError(ValueError):
    """A point-cloud, mesh or label file is malformed; the message names the file."""


class DatasetNotFoundError(FileNotFoundError):
    """A dataset root is missing or incomplete; the message names the expected path."""


def data_root(root: str | os.PathLike[str] | None, default_name: str) -> Path:
    """The dataset folder: ``root``, else ``$POINTSAM_DATA/<default_name>``.

    ``POINTSAM_DATA`` defaults to ``./datasets`` (the repository's data folder).
    """
    if root is not None:
        return Path(root).expanduser()
    base = Path(os.environ.get("POINTSAM_DATA", "datasets")).expanduser()
    return base / default_name


def missing(what: str, path: Path, extra: str = "") -> DatasetNotFoundError:
    """A :class:`DatasetNotFoundError` naming ``path`` and pointing to the README."""
    msg = f"{what}: expected {path.resolve()}"
    if extra:
        msg += f" ({extra})"
    return DatasetNotFoundError(f"{msg}; {README_HINT}")


def _writable(root: Path) -> bool:
    """Whether ``root`` may take a ``processed/`` folder.

    Permission bits are checked, not only ``os.access``: a root-owned ``r-x``
    tree (shared, mounted data) counts as read-only even for the superuser.
    """
    probe = root / "processed"
    target = probe if probe.is_dir() else root
    try:
        mode = target.stat().st_mode
    except OSError:
        return False
    return bool(mode & stat.S_IWUSR) and os.access(target, os.W_OK)


def cache_dir_for(
    root: Path, key: str, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Where derived files (sampled meshes) of ``root`` with options ``key`` go.

    Order: ``cache_dir`` if given; else ``<root>/processed/<key>`` when the root is
    writable; else ``$POINTSAM_CACHE`` (default ``~/.cache/pointsam``) ``/<hash of
    the absolute root>/<key>``, so read-only roots (shared or mounted data) work.
    """
    if cache_dir is not None:
        base = Path(cache_dir).expanduser()
        h = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
        out = base / h / key
    else:
        out = root / "processed" / key
        if not _writable(root):
            base = Path(os.environ.get("POINTSAM_CACHE", "~/.cache/pointsam"))
            h = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]
            out = base.expanduser() / h / key
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` atomically (:func:`pointsam._atomic.atomic_write`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        np.save(f, array)


def make_data(
    pos: np.ndarray,
    *,
    source: str | os.PathLike[str] = "",
    x: np.ndarray | None = None,
    y: np.ndarray | int | None = None,
    **extra: Any,
) -> Data:
    """A PyG ``Data`` with float32 ``pos`` [N, 3], float32 ``x`` and int64 ``y``.

    Raises :class:`CloudFormatError` naming ``source`` for an empty cloud or NaN/Inf
    coordinates.
    """
    pos = np.asarray(pos)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise CloudFormatError(f"{source}: points must be [N, 3], got {pos.shape}")
    if pos.shape[0] == 0:
        raise CloudFormatError(f"{source}: empty cloud (0 points)")
    finite = np.isfinite(pos).all(axis=1)
    if not finite.all():
        raise CloudFormatError(
            f"{source}: {int((~finite).sum())} points have NaN or Inf coordinates"
        )
    data = Data(pos=torch.from_numpy(np.ascontiguousarray(pos, dtype=np.float32)))
    if x is not None:
        x = np.asarray(x, dtype=np.float32).reshape(pos.shape[0], -1)
        data.x = torch.from_numpy(np.ascontiguousarray(x))
    if y is not None:
        if np.isscalar(y) or np.ndim(y) == 0:
            data.y = torch.tensor([int(y)], dtype=torch.long)  # [1]
        else:
            data.y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    for k, v in extra.items():
        data[k] = v
    return data


def concat_frames(parts: list[Data], poses: list[np.ndarray]) -> Data:
    r"""One multi-scan sample: the frames' points concatenated, their poses stacked.

    Args:
        parts: T frames, each a ``Data`` with the same keys (``pos`` [N_t, 3],
            ``frame`` [N_t], ...), already in one coordinate frame.
        poses: T relative 4 x 4 poses.

    Returns:
        A ``Data`` with every key concatenated over the frames ([sum N_t, ...])
        and ``poses`` [1, T, 4, 4] float32.
    """
    out = Data()
    for key in parts[0].keys():
        out[key] = torch.cat([p[key] for p in parts], 0)  # [sum N_t, ...]
    out.poses = torch.from_numpy(np.stack(poses)).float().unsqueeze(0)  # [1, T, 4, 4]
    return out
