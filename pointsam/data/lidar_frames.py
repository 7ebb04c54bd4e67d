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
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from . import transforms as T
from ._common import IGNORE_INDEX, CloudFormatError, DatasetNotFoundError, make_data
from .base import PointDataset
from .synthetic.lidar import SYNTHETIC_TO_SEMANTICKITTI, SyntheticLidar

__all__ = [
    "NUM_LEARNING_CLASSES",
    "SYNTHETIC_TO_SEMANTICKITTI",
    "read_learning_frame",
    "map_synthetic_labels",
    "split_region",
    "RandomFlipXY",
    "LidarCrops",
    "LidarFrames",
    "synthetic_scans",
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


def split_region(data: Data, axis: int, below: float | None = None, *,
                 above: float | None = None) -> tuple[Data, Data]:
    """``(rest, held_out)``: the points with ``pos[:, axis] < below`` (or
    ``> above``) held out; give exactly one of ``below`` and ``above``."""
    if (below is None) == (above is None):
        raise ValueError("give one of below and above")
    v = data.pos[:, axis]
    m = v < below if below is not None else v > above
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
    and y, thinned by ``point_dropout`` and jittered (1 cm, clipped at 5 cm).
    The thinning is PointNet++'s random input dropout: a ratio
    :math:`\theta \sim U(0, \text{point\_dropout})` per crop, and
    :math:`\lfloor \theta M \rfloor` of its M points dropped at random, so
    the crops span the densities of near and far parts of a scan (a car 40 m
    away holds tens of points, one at 10 m thousands).

    Args:
        real: Scans with ``pos`` and ``y`` (train ids, -1 ignored).
        synthetic: More scans, already mapped to the same train ids.
        num_samples: Length of the dataset (items are independent draws).
        real_fraction: Share of crops drawn from ``real``. (default: 0.5)
        boxed: Scans labelled only where boxes say so (other points -1).
        box_fraction: Share of crops drawn from ``boxed``, before the real /
            synthetic choice. (default: 0)
        radius: Cylinder radius in metres. (default: 20)
        max_points: Points per crop at most. (default: 8192)
        voxel_size: Voxel edge in metres (0: none). (default: 0.1)
        augment: Apply the random rotation, scale, flip, thinning and jitter.
            (default: True)
        point_dropout: Largest share of a crop's points dropped
            (:class:`~pointsam.data.transforms.PointDropout`; 0: none).
            (default: 0)
        seed: Base seed.

    Shapes:
        - **output:** ``Data`` with pos :math:`(M, 3)`, y :math:`(M)`,
          :math:`M \le` ``max_points``
    """

    def __init__(self, real: Sequence[Data], synthetic: Sequence[Data] = (), *,
                 num_samples: int = 1000, real_fraction: float = 0.5,
                 radius: float = 20.0, max_points: int = 8192,
                 voxel_size: float = 0.1, augment: bool = True, seed: int = 0,
                 boxed: Sequence[Data] = (), box_fraction: float = 0.0,
                 point_dropout: float = 0.0) -> None:
        if not real and not synthetic:
            raise ValueError("LidarCrops needs at least one scan")
        if not 0 <= box_fraction < 1:
            raise ValueError(f"box_fraction must be in [0, 1), got {box_fraction}")
        if not 0 <= point_dropout < 1:
            raise ValueError(f"point_dropout must be in [0, 1), got {point_dropout}")
        self.point_dropout = float(point_dropout)
        self.boxed = list(boxed)
        self.box_fraction = box_fraction if self.boxed else 0.0
        if not 0 <= real_fraction <= 1:
            raise ValueError(f"real_fraction must be in [0, 1], got {real_fraction}")
        if not real:
            real_fraction = 0.0
        elif not synthetic:
            real_fraction = 1.0
        for d in list(real) + list(synthetic) + self.boxed:
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
        if self.boxed and float(torch.rand(1, generator=g)) < self.box_fraction:
            pool = self.boxed  # a box-labelled scan of another drive
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
                *([T.PointDropout(self.point_dropout, seed=seed + 4)]
                  if self.point_dropout > 0 else []),
                T.Jitter(0.01, 0.05, seed=seed + 3),
            ])(crop)
        return crop

    def class_counts(self) -> Tensor:
        """Labelled points per train id over all scans (real and synthetic) [19]."""
        ys = torch.cat([d.y for d in self.real + self.synthetic + self.boxed])
        ys = ys[ys >= 0]
        return torch.bincount(ys, minlength=NUM_LEARNING_CLASSES)

    def __repr__(self) -> str:
        return (f"LidarCrops({len(self.real)} real + {len(self.synthetic)} synthetic "
                f"scans, radius={self.radius}, max_points={self.max_points}, "
                f"voxel={self.voxel_size}, real_fraction={self.real_fraction}"
                + (f", point_dropout={self.point_dropout}" if self.point_dropout else "")
                + ")")


def _box_scan(path: str | os.PathLike[str]) -> Data:
    """A box-labelled scan for training crops: ``pos`` and ``y`` (car, person,
    bicyclist inside their boxes, -1 elsewhere)."""
    from .kitti_boxes import read_kitti_object, read_squeezeseg

    f = Path(path)
    if f.suffix == ".npy":
        d = read_squeezeseg(f)
    elif f.suffix == ".bin" and f.parent.name == "velodyne":
        top = f.parent.parent
        d = read_kitti_object(f, top / "label_2" / f"{f.stem}.txt",
                              top / "calib" / f"{f.stem}.txt")
    else:
        raise ValueError(f"box_scans: {f} is neither a SqueezeSeg .npy nor a KITTI "
                         "object .../velodyne/NNNNNN.bin (with label_2/ and calib/ "
                         "beside velodyne/)")
    return Data(pos=d.pos, y=d.y)


def synthetic_scans(n: int, seed: int) -> list[Data]:
    """``n`` :class:`~pointsam.data.SyntheticLidar` scenes in SemanticKITTI's
    train ids (:data:`SYNTHETIC_TO_SEMANTICKITTI`), without intensity (the real
    frames have none)."""
    if n <= 0:
        return []
    ds = SyntheticLidar(num_samples=n, split="train", seed=seed)
    out = []
    for i in range(n):
        d = ds[i]
        d.y = map_synthetic_labels(d.y)
        del d.x
        out.append(d)
    return out


class LidarFrames(PointDataset):
    r"""Labelled LiDAR frames as a dataset: crops to train on, a held-out region
    to validate on, whole frames to test on.

    The frames are ``root/points/<id>.npy`` and ``root/labels/<id>.npy`` in
    SemanticKITTI's learning map (:func:`read_learning_frame`; the layout of
    Open3D-ML's demo data). The ``"train"`` split is :class:`LidarCrops` of
    the train frames without their held-out region (plus synthetic scenes);
    ``"val"`` holds each train frame's held-out region (``pos[:, axis] <
    below``), whole, and the ``val_frames``; ``"test"`` the ``test_frames``,
    whole. Validation and test label every point through the trainer's
    whole-scan path (``train.voxel_size``, ``train.chunk_points``). Without
    ``holdout`` and ``val_frames`` the val split is empty and the trainer keeps
    the last step (every labelled point trains; no selection).

    Args:
        root: The frames' folder.
        split: ``"train"``, ``"val"`` or ``"test"``.
        train_frames: Frame ids whose crops train.
        test_frames: Frame ids of the test split; ``[]`` (given explicitly):
            none, for a model trained on every labelled frame, checked on
            other drives instead (the trainer then skips the test). Left out,
            the test split refuses to build.
        val_frames: Further whole frames of the val split. (default: none)
        holdout: ``{"axis": 0 | 1 | 2, "below": metres}`` (or ``"above"``):
            the region of every train frame with ``pos[:, axis] < below`` (``>
            above``), which validates and never trains (default: none).
        num_samples: Crops in one pass of the train split. (default: 4096)
        synthetic_scenes: :class:`~pointsam.data.SyntheticLidar` scenes mixed
            into the crops. (default: 0)
        box_scans: Real scans of other drives whose boxes label cars, people
            and cyclists (:mod:`~pointsam.data.kitti_boxes`): a KITTI object
            ``.../velodyne/NNNNNN.bin`` (its ``label_2`` and ``calib`` beside) or
            a SqueezeSeg ``.npy``. They join the real scans of the crops with
            only their box points labelled; every other point is ignored, never
            taken as background. (default: none)
        box_fraction: Share of the crops drawn from ``box_scans``. (default: 0.25)
        real_fraction, radius, max_points, voxel_size, point_dropout: As
            :class:`LidarCrops`.
        seed: Seed of the crops and of the synthetic scenes.

    Shapes:
        - **train item:** pos :math:`(M, 3)`, y :math:`(M)`, :math:`M \le`
          ``max_points``
        - **val / test item:** one whole region or frame, pos :math:`(N, 3)`,
          y :math:`(N)` (-1: unlabeled)
    """

    splits = ("train", "val", "test")
    val_split = "val"
    item_name = "items"
    num_classes = NUM_LEARNING_CLASSES
    ignore_index = IGNORE_INDEX

    def __init__(self, root: str | os.PathLike[str], split: str = "train", *,
                 train_frames: Sequence[str] = (),
                 test_frames: Sequence[str] | None = None,
                 val_frames: Sequence[str] = (), holdout: dict | None = None,
                 num_samples: int = 4096, synthetic_scenes: int = 0,
                 box_scans: Sequence[str] = (), box_fraction: float = 0.25,
                 real_fraction: float = 0.5, radius: float = 20.0,
                 max_points: int = 8192, voxel_size: float = 0.1,
                 point_dropout: float = 0.0,
                 seed: int = 0, transform: Callable[[Data], Data] | None = None) -> None:
        from .kitti import class_names

        if split not in self.splits:
            raise ValueError(f"split must be one of {', '.join(self.splits)}, got "
                             f"{split!r}")
        no_test = test_frames is not None and len(test_frames) == 0
        test_frames = () if test_frames is None else test_frames
        for name, ids in (("train_frames", train_frames), ("test_frames", test_frames),
                          ("val_frames", val_frames)):
            if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
                raise ValueError(f"{name} must be a list of frame ids (strings such "
                                 f"as '000700'), got {ids!r}")
        if not train_frames:
            raise ValueError("LidarFrames needs at least one train frame "
                             "(train_frames)")
        if holdout is not None and not (
                isinstance(holdout, dict) and len(holdout) == 2 and "axis" in holdout
                and holdout["axis"] in (0, 1, 2)
                and not isinstance(holdout["axis"], bool)
                and ({"below", "above"} & set(holdout))
                and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                        for k, v in holdout.items() if k != "axis")):
            raise ValueError("holdout must be {axis: 0|1|2, below: metres} or {axis: "
                             "0|1|2, above: metres} (the held-out region is "
                             f"pos[:, axis] < below, or > above), got {holdout!r}")
        self.root, self.split, self.transform = Path(root), split, transform
        self.classes = class_names()
        self.train_frames, self.test_frames = list(train_frames), list(test_frames)
        self.val_frames, self.holdout = list(val_frames), holdout
        for fid in self.train_frames + self.test_frames + self.val_frames:
            for sub in ("points", "labels"):
                f = self.root / sub / f"{fid}.npy"
                if not f.is_file():
                    raise DatasetNotFoundError(
                        f"LidarFrames: {f} not found (frames are "
                        f"root/points/<id>.npy and root/labels/<id>.npy; a "
                        f"relative root is read from {Path.cwd()})")
        rest, held = [], []
        if split in ("train", "val"):
            for fid in self.train_frames:
                scan = self._frame(fid)
                if holdout is not None:
                    r, h = split_region(scan, int(holdout["axis"]),
                                        holdout.get("below"), above=holdout.get("above"))
                    if r.pos.size(0) == 0 or h.pos.size(0) == 0:
                        raise ValueError(
                            f"holdout {holdout} leaves frame {fid} with "
                            f"{r.pos.size(0)} training and {h.pos.size(0)} "
                            "held-out points; both must be non-empty")
                    rest.append(r)
                    held.append(h)
                else:
                    rest.append(scan)
        if split == "train":
            if not any(bool((d.y >= 0).any()) for d in rest):
                raise ValueError(f"the train frames {self.train_frames} hold no "
                                 "labelled point outside the held-out region")
            synth = synthetic_scans(int(synthetic_scenes), int(seed))
            boxed = [_box_scan(f) for f in box_scans]
            self._crops: LidarCrops | None = LidarCrops(
                rest, synth, num_samples=num_samples, real_fraction=real_fraction,
                radius=radius, max_points=max_points, voxel_size=voxel_size,
                seed=seed, boxed=boxed, box_fraction=box_fraction,
                point_dropout=point_dropout)
            self._scans: list[Data] = []
        else:
            self._crops = None
            ids = self.val_frames if split == "val" else self.test_frames
            self._scans = held + [self._frame(fid) for fid in ids]
            if not self._scans and split == "test" and not no_test:
                raise ValueError("LidarFrames has no test scan: give test_frames "
                                 "(test_frames: [] for none)")

    def _frame(self, fid: str) -> Data:
        return read_learning_frame(self.root / "points" / f"{fid}.npy",
                                   self.root / "labels" / f"{fid}.npy")

    def __len__(self) -> int:
        return len(self._crops) if self._crops is not None else len(self._scans)

    def get(self, idx: int) -> Data:
        if self._crops is not None:
            return self._crops[idx]
        return self._scans[idx].clone()

    def class_counts(self) -> Tensor:
        """Labelled points per train id in the scans of this split [19]."""
        if self._crops is not None:
            return self._crops.class_counts()
        ys = torch.cat([d.y for d in self._scans])
        return torch.bincount(ys[ys >= 0], minlength=NUM_LEARNING_CLASSES)

    def __repr__(self) -> str:
        return (f"LidarFrames({self.split}, train={self.train_frames}, "
                f"test={self.test_frames}, {len(self)} {self.item_name})")
