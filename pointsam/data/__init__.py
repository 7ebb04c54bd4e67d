r"""Datasets, file readers, synthetic sets and transforms.

Every dataset returns PyG ``Data`` samples (``pos`` [N, 3] float32, optional ``x``,
``y`` [1] for classification or [N] for segmentation, ``category`` [1] for part
segmentation) and works with ``torch_geometric.loader.DataLoader`` or
:func:`collate`, which build ``batch`` and ``ptr``. Nothing downloads: a missing
dataset raises :class:`DatasetNotFoundError` naming the expected path and
pointing to ``datasets/README.md``.

Example:
    >>> ds = SyntheticShapes(num_samples=4, num_points=64)
    >>> b = collate([ds[0], ds[1]])
    >>> b.pos.shape, b.batch.shape, b.ptr.tolist(), b.y.tolist()
    (torch.Size([128, 3]), torch.Size([128]), [0, 64, 128], [0, 1])
"""

from collections.abc import Sequence

from torch_geometric.data import Batch, Data

from ._common import IGNORE_INDEX, CloudFormatError, DatasetNotFoundError
from .base import PointDataset
from .crops import CylinderCrop, SphereCrop
from .io import read_cloud, read_kitti_bin, read_kitti_label, read_off, sample_surface
from .kitti import SemanticKITTI, learning_map_lut, semantic_kitti_config
from .lidar_frames import LidarFrames
from .modelnet import MODELNET10_CLASSES, MODELNET40_CLASSES, ModelNet
from .shapenet import SEG_CLASSES, ShapeNetPart
from .split import split_train_val
from .synthetic import (
    LIDAR_CLASSES,
    MOVING_CLASSES,
    PART_CLASSES,
    SHAPE_CLASSES,
    SyntheticLidar,
    SyntheticParts,
    SyntheticShapes,
)
from .transforms import (
    Compose,
    FixedPoints,
    Jitter,
    NormalizeScale,
    PointDropout,
    RandomRotate,
    RandomScale,
    RandomShift,
    VoxelSubsample,
)


def collate(data_list: Sequence[Data]) -> Batch:
    """Stack samples into one PyG ``Batch`` with ``batch`` [N] and ``ptr`` [B + 1].

    Per-point fields are concatenated, ``y`` [1] and ``category`` [1] become [B],
    ``poses`` [1, T, 4, 4] become [B, T, 4, 4]. Same as PyG's DataLoader collater.
    """
    if len(data_list) == 0:
        raise ValueError("collate needs at least one sample")
    return Batch.from_data_list(list(data_list))


__all__ = [
    "LidarFrames",
    "PointDataset",
    "ModelNet",
    "ShapeNetPart",
    "SemanticKITTI",
    "SyntheticShapes",
    "SyntheticParts",
    "SyntheticLidar",
    "read_cloud",
    "read_off",
    "read_kitti_bin",
    "read_kitti_label",
    "sample_surface",
    "collate",
    "split_train_val",
    "Compose",
    "NormalizeScale",
    "FixedPoints",
    "RandomRotate",
    "RandomScale",
    "RandomShift",
    "Jitter",
    "PointDropout",
    "VoxelSubsample",
    "SphereCrop",
    "CylinderCrop",
    "CloudFormatError",
    "DatasetNotFoundError",
    "IGNORE_INDEX",
    "MODELNET10_CLASSES",
    "MODELNET40_CLASSES",
    "SEG_CLASSES",
    "SHAPE_CLASSES",
    "PART_CLASSES",
    "LIDAR_CLASSES",
    "MOVING_CLASSES",
    "semantic_kitti_config",
    "learning_map_lut",
]
