r"""Real SemanticKITTI frames in learning-map space, and random training crops of scans.

The two Open3D-ML demo frames (``open3d_ml_demo_data/examples/demo_data/``
``points/NNNNNN.npy`` float32 [N, 3], ``labels/NNNNNN.npy`` int32 [N, 1]) hold
labels already mapped by SemanticKITTI's ``learning_map``: 0 = unlabeled,
1..19 = the 19 classes (car ... traffic-sign). :func:`read_learning_frame` reads
such a pair into train ids 0..18 with unlabeled as
:data:`~pointsam.data.IGNORE_INDEX` (-1), the convention of
:class:`~pointsam.data.SemanticKITTI`.

:class:`LidarCrops` draws training samples from a few whole scans (real frames
and :class:`~pointsam.data.SyntheticLidar` scenes, whose 8 classes are mapped
onto SemanticKITTI's train ids by :data:`SYNTHETIC_TO_SEMANTICKITTI`): a random
vertical cylinder, voxel-subsampled, capped to the points nearest its axis,
centred on its centre, then rotated about z, scaled, flipped and jittered.
The crops carry no absolute coordinate and no intensity.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from . import transforms as T
from ._common import IGNORE_INDEX, CloudFormatError, make_data
from .synthetic.lidar import SYNTHETIC_TO_SEMANTICKITTI

__all__ = [
    "NUM_LEARNING_CLASSES",
    "SYNTHETIC_TO_SEMANTICKITTI",
    "read_learning_frame",
    "map_synthetic_labels",
    "split_region",
    "RandomFlipXY",
    "LidarCrops",
    "class_weights",
]

#: Classes of the learning map (1..19); train ids are 0..18.
NUM_LEARNING_CLASSES = 19


def read_learning_frame(points: str | os.PathLike[str],
                        labels: str | os.PathLike[str] | None = None) -> Data:
    """One scan ``.npy`` (float [N, 3+]) with optional learning-map labels ``.npy``.

    Columns beyond x, y, z are dropped (no intensity is used). Labels are
    int [N] or [N, 1] in 0..19 (0 = unlabeled); they become ``y`` = label - 1
    in -1..18.

    Raises:
        CloudFormatError: wrong column count, empty scan, NaN/Inf, a label count
            that differs from the point count, or label ids outside 0..19.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> np.save(d / "p.npy", np.zeros((3, 3), np.float32))
        >>> np.save(d / "l.npy", np.array([[0], [1], [19]], np.int32))
        >>> read_learning_frame(d / "p.npy", d / "l.npy").y.tolist()
        [-1, 0, 18]
    """
    pts = np.load(points, allow_pickle=False)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise CloudFormatError(f"{points}: a scan must be [N, 3] (or more columns: "
                               f"x y z ...), got shape {pts.shape}")
    if pts.shape[0] == 0:
        raise CloudFormatError(f"{points}: empty scan (0 points)")
    y = None
    if labels is not None:
        lab = np.load(labels, allow_pickle=False)
        if lab.ndim == 2 and lab.shape[1] == 1:
            lab = lab[:, 0]
        if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
            raise CloudFormatError(f"{labels}: labels must be integers [N] or [N, 1], "
                                   f"got {lab.dtype} {lab.shape}")
        if lab.shape[0] != pts.shape[0]:
            raise CloudFormatError(f"{labels}: {lab.shape[0]} labels for "
                                   f"{pts.shape[0]} points in {points}")
        bad = (lab < 0) | (lab > NUM_LEARNING_CLASSES)
        if bad.any():
            raise CloudFormatError(
                f"{labels}: {int(bad.sum())} label ids outside the learning map "
                f"0..{NUM_LEARNING_CLASSES} (e.g. {int(lab[bad][0])}); raw "
                "SemanticKITTI ids must go through learning_map first")
        y = lab.astype(np.int64) - 1
        y[y < 0] = IGNORE_INDEX
    return make_data(pts[:, :3], source=points, y=y)


def map_synthetic_labels(y: Tensor) -> Tensor:
    """SyntheticLidar class ids -> SemanticKITTI train ids (see the mapping)."""
    lut = torch.tensor(SYNTHETIC_TO_SEMANTICKITTI, dtype=torch.long)
    return lut[y]


def split_region(data: Data, axis: int, below: float) -> tuple[Data, Data]:
    """``(rest, held_out)``: the points with ``pos[:, axis] < below`` held out."""
    m = data.pos[:, axis] < below
    return T.subset_points(data.clone(), ~m), T.subset_points(data.clone(), m)


class RandomFlipXY(T._Random):
    """Mirror x and y, each with probability 1/2 (z is never flipped)."""

    def __call__(self, data: Data) -> Data:
        s = torch.where(self._rand(2) < 0.5, -1.0, 1.0).to(data.pos.dtype)  # [2]
        data.pos = torch.cat([data.pos[:, :2] * s, data.pos[:, 2:]], 1)
        return data

    def __repr__(self) -> str:
        return "RandomFlipXY()"


class LidarCrops(torch.utils.data.Dataset):
    r"""Random cylinder crops of a few whole scans, augmented (an endless sampler).

    Item ``i`` draws, from its own generator seeded by ``(seed, i)``: a scan
    (``real`` with probability ``real_fraction``, else one of ``synthetic``),
    a centre (a random point of it), the points within ``radius`` metres of the
    vertical axis through the centre, one per ``voxel_size`` voxel, at most
    ``max_points`` (the nearest to the axis). The crop is centred on its
    centroid, rotated about z by a uniform angle, scaled by
    :math:`s \sim U(0.9, 1.1)` (isotropic: heights stay heights), flipped in x
    and y and jittered (1 cm, clipped at 5 cm).

    Args:
        real: Scans with ``pos`` and ``y`` (train ids, -1 ignored).
        synthetic: More scans, already mapped to the same train ids.
        num_samples: Length of the dataset (items are independent draws).
        real_fraction: Share of crops drawn from ``real``. (default: 0.5)
        radius: Cylinder radius in metres. (default: 20)
        max_points: Points per crop at most. (default: 8192)
        voxel_size: Voxel edge in metres (0: none). (default: 0.1)
        augment: Apply the random rotation, scale, flip and jitter. (default: True)
        seed: Base seed.

    Shapes:
        - **output:** ``Data`` with pos :math:`(M, 3)`, y :math:`(M)`,
          :math:`M \le` ``max_points``
    """

    def __init__(self, real: Sequence[Data], synthetic: Sequence[Data] = (), *,
                 num_samples: int = 1000, real_fraction: float = 0.5,
                 radius: float = 20.0, max_points: int = 8192,
                 voxel_size: float = 0.1, augment: bool = True, seed: int = 0) -> None:
        if not real and not synthetic:
            raise ValueError("LidarCrops needs at least one scan")
        if not 0 <= real_fraction <= 1:
            raise ValueError(f"real_fraction must be in [0, 1], got {real_fraction}")
        if not real:
            real_fraction = 0.0
        elif not synthetic:
            real_fraction = 1.0
        for d in list(real) + list(synthetic):
            if getattr(d, "y", None) is None or d.y.numel() != d.pos.size(0):
                raise ValueError("every scan needs per-point labels y [N]")
        self.real, self.synthetic = list(real), list(synthetic)
        self.num_samples, self.real_fraction = num_samples, real_fraction
        self.radius, self.max_points = radius, max_points
        self.voxel_size, self.augment, self.seed = voxel_size, augment, seed

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, i: int) -> Data:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))
        use_real = float(torch.rand(1, generator=g)) < self.real_fraction
        pool = self.real if use_real else self.synthetic
        scan = pool[int(torch.randint(len(pool), (1,), generator=g))]
        pos = scan.pos
        c = pos[int(torch.randint(pos.size(0), (1,), generator=g))]  # [3]
        d2 = ((pos[:, :2] - c[:2]) ** 2).sum(1)  # [N]
        keep = (d2 <= self.radius**2).nonzero().view(-1)  # [K]
        crop = Data(pos=pos.index_select(0, keep), y=scan.y.index_select(0, keep))
        if self.voxel_size > 0:
            crop = T.VoxelSubsample(self.voxel_size)(crop)
        if crop.pos.size(0) > self.max_points:
            d2c = ((crop.pos[:, :2] - c[:2]) ** 2).sum(1)  # [K']
            near = torch.argsort(d2c, stable=True)[: self.max_points]
            crop = T.subset_points(crop, near.sort().values)
        crop.pos = crop.pos - crop.pos.mean(0)  # centred: no absolute coordinate
        if self.augment:
            seed = int(torch.randint(2**31, (1,), generator=g))
            crop = T.Compose([
                T.RandomRotate("z", degrees=180.0, seed=seed),
                T.RandomScale(0.9, 1.1, anisotropic=False, seed=seed + 1),
                RandomFlipXY(seed + 2),
                T.Jitter(0.01, 0.05, seed=seed + 3),
            ])(crop)
        return crop

    def class_counts(self) -> Tensor:
        """Labelled points per train id over all scans (real and synthetic) [19]."""
        ys = torch.cat([d.y for d in self.real + self.synthetic])
        ys = ys[ys >= 0]
        return torch.bincount(ys, minlength=NUM_LEARNING_CLASSES)

    def __repr__(self) -> str:
        return (f"LidarCrops({len(self.real)} real + {len(self.synthetic)} synthetic "
                f"scans, radius={self.radius}, max_points={self.max_points}, "
                f"voxel={self.voxel_size}, real_fraction={self.real_fraction})")


def class_weights(counts: Tensor, power: float = 0.5, cap: float = 10.0) -> Tensor:
    r"""Loss weights :math:`w_c \propto n_c^{-p}`, mean 1 over seen classes, <= cap.

    Classes with no point get weight 0 (they never appear in a target).
    """
    n = counts.double()
    w = torch.where(n > 0, n.clamp(min=1) ** -power, torch.zeros_like(n))
    seen = n > 0
    w = w / w[seen].mean() if seen.any() else w
    return w.clamp(max=cap).float()

