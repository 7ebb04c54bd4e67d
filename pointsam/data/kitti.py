r"""SemanticKITTI: Velodyne scans with per-point labels, single or multi-scan."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch_geometric.data import Data

from ._common import (
    IGNORE_INDEX,
    CloudFormatError,
    concat_frames,
    data_root,
    make_data,
    missing,
)
from .base import PointDataset
from .io import read_kitti_bin, read_kitti_label

__all__ = [
    "SemanticKITTI",
    "semantic_kitti_config",
    "learning_map_lut",
    "MOVING_LEARNING_MAP",
    "MOVING_CLASS_NAMES",
    "read_poses",
    "read_calib",
]

SPLITS = ("train", "val", "test", "trainval")


@functools.lru_cache(maxsize=1)
def semantic_kitti_config() -> dict[str, Any]:
    """The official ``semantic-kitti.yaml`` (PRBonn/semantic-kitti-api, MIT)."""
    text = resources.files("pointsam.data").joinpath("semantic-kitti.yaml").read_text()
    return yaml.safe_load(text)


#: The multi-scan benchmark's moving classes (``semantic-kitti-all.yaml`` of the
#: semantic-kitti-api): raw id -> train id after the 19 static classes.
MOVING_LEARNING_MAP: dict[int, int] = {
    252: 19,  # moving-car
    253: 20,  # moving-bicyclist
    254: 21,  # moving-person
    255: 22,  # moving-motorcyclist
    256: 23,  # moving-on-rails -> moving-other-vehicle
    257: 23,  # moving-bus -> moving-other-vehicle
    258: 24,  # moving-truck
    259: 23,  # moving-other-vehicle
}
#: Names of train ids 19..24 with ``moving_classes=True``.
MOVING_CLASS_NAMES = ("moving-car", "moving-bicyclist", "moving-person",
                      "moving-motorcyclist", "moving-other-vehicle", "moving-truck")


def learning_map_lut(moving_classes: bool = False) -> np.ndarray:
    r"""Raw SemanticKITTI label -> train id, int64 [max raw + 1].

    Train id = ``learning_map[raw] - 1`` in 0..18; the yaml's class 0 (unlabeled,
    outlier, other-structure, other-object) and raw ids absent from the map give
    :data:`~pointsam.data.IGNORE_INDEX` (-1). The single-scan map folds a moving
    object into its static class (moving-car -> car); ``moving_classes=True``
    keeps them apart as the multi-scan benchmark does (raw 252-259 -> 19..24,
    :data:`MOVING_LEARNING_MAP`).

    Example:
        >>> lut = learning_map_lut()
        >>> lut[[0, 10, 40, 252]].tolist()  # unlabeled, car, road, moving-car
        [-1, 0, 8, 0]
        >>> learning_map_lut(moving_classes=True)[[10, 252, 257, 258]].tolist()
        [0, 19, 23, 24]
    """
    lm = semantic_kitti_config()["learning_map"]
    lut = np.full(max(lm) + 1, IGNORE_INDEX, dtype=np.int64)
    for raw, v in lm.items():
        lut[raw] = v - 1 if v > 0 else IGNORE_INDEX
    if moving_classes:
        for raw, v in MOVING_LEARNING_MAP.items():
            lut[raw] = v
    return lut


def class_names() -> tuple[str, ...]:
    """The 19 train classes in train-id order (``car`` ... ``traffic-sign``)."""
    cfg = semantic_kitti_config()
    inv = cfg["learning_map_inv"]
    return tuple(cfg["labels"][inv[i]] for i in range(1, len(inv)))


def read_calib(path: Path) -> np.ndarray:
    """``Tr`` (Velodyne -> camera 0) from a sequence's ``calib.txt``, [4, 4] float64."""
    for ln in path.read_text().splitlines():
        if ln.startswith("Tr:"):
            vals = np.array(ln.split()[1:], dtype=np.float64)
            if vals.size != 12:
                raise CloudFormatError(
                    f"{path}: Tr must have 12 values, has {vals.size}"
                )
            return np.vstack([vals.reshape(3, 4), [0, 0, 0, 1]])
    raise CloudFormatError(f"{path}: no 'Tr:' line")


def read_poses(path: Path, calib: np.ndarray | None = None) -> np.ndarray:
    r"""Poses from ``poses.txt`` (camera 0 frame, 12 values per line), [T, 4, 4].

    With ``calib`` (``Tr``), the Velodyne poses :math:`T^{-1} P_t T` are returned,
    which map scan t's points into the frame of the first scan.
    """
    try:
        vals = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as err:
        raise CloudFormatError(f"{path}: malformed poses ({err})") from err
    if vals.shape[1] != 12:
        raise CloudFormatError(
            f"{path}: poses need 12 values per line, got {vals.shape[1]}"
        )
    poses = np.tile(np.eye(4), (len(vals), 1, 1))  # [T, 4, 4]
    poses[:, :3, :] = vals.reshape(-1, 3, 4)
    if calib is not None:
        poses = np.linalg.inv(calib) @ poses @ calib  # [T, 4, 4]
    return poses


class SemanticKITTI(PointDataset):
    r"""SemanticKITTI semantic segmentation (19 classes + ignore), original files.

    Layout under ``root`` (``format="kitti"``)::

        sequences/NN/velodyne/NNNNNN.bin   # float32 x, y, z, remission
        sequences/NN/labels/NNNNNN.label   # uint32: semantic (low 16) | instance << 16
        sequences/NN/poses.txt, calib.txt  # for num_scans > 1

    or the Open3D-ML demo variant (``format="npy"``): ``points/NNNNNN.npy`` float32
    [N, 3] and ``labels/NNNNNN.npy`` int [N, 1] already in learning-map class space
    (0 = unlabeled).

    Raw labels go through the learning map of the official ``semantic-kitti.yaml``
    (shipped as package data) to train ids 0..18 (:attr:`classes`), unlabeled
    classes to -1. With ``moving_classes=True`` (the multi-scan benchmark,
    ``semantic-kitti-all.yaml``; LiDAR-MOS's moving/static split is its union)
    the moving objects keep their own classes 19..24 (moving-car,
    moving-bicyclist, moving-person, moving-motorcyclist, moving-other-vehicle,
    moving-truck: :data:`MOVING_LEARNING_MAP`), 25 classes in all; the Open3D-ML
    ``npy`` frames are already mapped to the 19 and cannot take it. Splits follow the yaml: train 00-07, 09, 10; val 08; test 11-21
    (no labels). ``sequences`` overrides the split.

    Each sample: ``pos`` [N, 3] (sensor frame of the newest scan), ``x`` [N, 1]
    remission (kitti format), ``y`` [N] train ids (absent for unlabelled test
    scans), ``instance`` [N] (kitti format). With ``num_scans = T > 1`` the scan
    and its T-1 predecessors in the same sequence are stacked, each moved into the
    newest scan's frame by the poses; ``frame`` [N] says 0 (newest) .. T-1, and
    ``poses`` [1, T, 4, 4] are the transforms used.

    Stats:
        ==========  =====  ======  ======  ======  =========
        #classes    #seq   #train  #val    #test   #points
        ==========  =====  ======  ======  ======  =========
        19          22     19,130  4,071   20,351  ~120,000
        ==========  =====  ======  ======  ======  =========

    Args:
        root: Dataset folder (default ``$POINTSAM_DATA/SemanticKITTI``; the folder
            holding ``sequences/``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        sequences: Sequence ids to use instead of the split (``["00", "08"]``).
        num_scans: Scans per sample (1 = single scan).
        format: ``"auto"``, ``"kitti"`` or ``"npy"``.
        remap: Map raw labels to train ids (``False`` keeps raw ids in ``y``).
        moving_classes: Keep moving objects apart (25 classes, see above).
        transform: Applied to each sample on access.
    """

    #: Label of unlabeled points (the learning map's class 0).
    ignore_index = IGNORE_INDEX
    splits = SPLITS

    item_name = "scans"

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        *,
        sequences: Sequence[str | int] | None = None,
        num_scans: int = 1,
        format: str = "auto",
        remap: bool = True,
        moving_classes: bool = False,
        transform: Callable[[Data], Data] | None = None,
    ) -> None:
        if not isinstance(moving_classes, bool):
            raise ValueError(f"moving_classes must be True or False, got "
                             f"{moving_classes!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        if format not in ("auto", "kitti", "npy"):
            raise ValueError(f"format must be 'auto', 'kitti' or 'npy', got {format!r}")
        if (
            isinstance(num_scans, bool)
            or not isinstance(num_scans, int)
            or num_scans < 1
        ):
            raise ValueError(f"num_scans must be an integer >= 1, got {num_scans!r}")
        self.root = data_root(root, "SemanticKITTI")
        if not self.root.is_dir():
            raise missing("SemanticKITTI root not found", self.root)
        if format == "auto":
            format = (
                "npy"
                if (self.root / "points").is_dir()
                and not (self.root / "sequences").is_dir()
                else "kitti"
            )
        self.format, self.split, self.num_scans = format, split, num_scans
        self.remap, self.transform = remap, transform
        self.moving_classes = moving_classes
        self.classes = class_names() + (MOVING_CLASS_NAMES if moving_classes else ())
        self.lut = learning_map_lut(moving_classes)
        self.scans: list[tuple[str, Path, Path | None]] = []  # (seq, bin, label)
        if format == "npy":
            if num_scans != 1:
                raise ValueError("num_scans > 1 needs the kitti layout with poses")
            if moving_classes:
                raise ValueError("moving_classes needs the raw SemanticKITTI labels "
                                 "(the kitti layout): the Open3D-ML npy frames are "
                                 "already mapped to the 19 static classes")
            pdir = self.root / "points"
            for f in sorted(pdir.glob("*.npy")):
                lab = self.root / "labels" / f.name
                self.scans.append(("", f, lab if lab.is_file() else None))
            if not self.scans:
                raise missing("no Open3D-ML frames found", pdir / "NNNNNN.npy")
            return
        seq_dir = self.root / "sequences"
        if not seq_dir.is_dir():
            raise missing("SemanticKITTI sequences folder not found", seq_dir)
        if sequences is None:
            cfg = semantic_kitti_config()["split"]
            keys = {
                "train": ["train"],
                "val": ["valid"],
                "test": ["test"],
                "trainval": ["train", "valid"],
            }[split]
            seqs = [f"{int(s):02d}" for k in keys for s in cfg[k]]
            present = [s for s in seqs if (seq_dir / s / "velodyne").is_dir()]
            if not present:
                raise missing(
                    f"no sequence of the {split} split {seqs} found",
                    seq_dir / seqs[0] / "velodyne",
                )
            self.missing_sequences = sorted(set(seqs) - set(present))
            if self.missing_sequences:
                warnings.warn(
                    f"SemanticKITTI {split} split: sequences {self.missing_sequences} "
                    f"are missing under {seq_dir}; using {present}",
                    stacklevel=2,
                )
            seqs = present
        else:
            seqs = [f"{int(s):02d}" for s in sequences]
            for s in seqs:
                if not (seq_dir / s / "velodyne").is_dir():
                    raise missing(f"sequence {s} not found", seq_dir / s / "velodyne")
            self.missing_sequences = []
        self.sequences = seqs
        self._poses: dict[str, np.ndarray] = {}
        for s in seqs:
            for f in sorted((seq_dir / s / "velodyne").glob("*.bin")):
                lab = seq_dir / s / "labels" / f"{f.stem}.label"
                self.scans.append((s, f, lab if lab.is_file() else None))
            if num_scans > 1:
                calib, poses = seq_dir / s / "calib.txt", seq_dir / s / "poses.txt"
                for p in (calib, poses):
                    if not p.is_file():
                        raise missing(
                            f"num_scans > 1 needs {p.name} of sequence {s}", p
                        )
                self._poses[s] = read_poses(poses, read_calib(calib))
        self._seq_start = [0] * len(self.scans)
        for i in range(1, len(self.scans)):
            same = self.scans[i][0] == self.scans[i - 1][0]
            self._seq_start[i] = self._seq_start[i - 1] if same else i
        if not self.scans:
            raise missing(
                "no scans found", seq_dir / seqs[0] / "velodyne" / "NNNNNN.bin"
            )

    def __len__(self) -> int:
        return len(self.scans)

    def _map(self, raw: np.ndarray, source: Path) -> np.ndarray:
        if not self.remap:
            return raw
        if raw.size and (raw.min() < 0 or raw.max() >= len(self.lut)):
            raise CloudFormatError(
                f"{source}: raw label {int(raw.max())} is not in "
                "the SemanticKITTI learning map"
            )
        return self.lut[raw]

    def _read_scan(self, idx: int) -> Data:
        seq, f, lab = self.scans[idx]
        if self.format == "npy":
            pts = np.load(f)
            if pts.ndim != 2 or pts.shape[1] < 3:
                raise CloudFormatError(f"{f}: points must be [N, 3+], got {pts.shape}")
            y = None
            if lab is not None:
                y = np.load(lab).reshape(-1).astype(np.int64)
                if y.size != len(pts):
                    raise CloudFormatError(
                        f"{lab}: label length mismatch, {y.size} "
                        f"labels for {len(pts)} points in {f.name}"
                    )
                if self.remap:
                    if y.size and (y.min() < 0 or y.max() > 19):
                        raise CloudFormatError(f"{lab}: class ids must be 0..19")
                    y = y - 1  # 0 (unlabeled) -> -1, 1..19 -> 0..18
            return make_data(pts[:, :3], source=f, y=y)
        pts = read_kitti_bin(f)
        d = make_data(pts[:, :3], source=f, x=pts[:, 3:4])
        if lab is not None:
            sem, inst = read_kitti_label(lab, len(pts))
            d.y = torch.from_numpy(self._map(sem, lab))
            d.instance = torch.from_numpy(inst)
        return d

    def get(self, idx: int) -> Data:
        """Sample ``idx`` before ``transform``."""
        if self.num_scans == 1:
            return self._read_scan(idx)
        seq = self.scans[idx][0]
        frame_no = int(self.scans[idx][1].stem)
        poses = self._poses[seq]
        parts, mats = [], []
        for t in range(self.num_scans):
            j = max(idx - t, self._seq_start[idx])  # the sequence start repeats
            d = self._read_scan(j)
            fj = int(self.scans[j][1].stem)
            if max(fj, frame_no) >= len(poses):
                raise CloudFormatError(
                    f"poses of sequence {seq} have {len(poses)} "
                    f"lines, scan {max(fj, frame_no)} needs more"
                )
            rel = np.linalg.inv(poses[frame_no]) @ poses[fj]  # [4, 4] scan j -> newest
            r = torch.from_numpy(rel[:3, :3]).float()
            tr = torch.from_numpy(rel[:3, 3]).float()
            d.pos = d.pos @ r.T + tr  # [N_j, 3]
            d.frame = torch.full((d.pos.size(0),), t, dtype=torch.long)
            parts.append(d)
            mats.append(rel)
        return concat_frames(parts, mats)

    @property
    def num_classes(self) -> int:
        """Number of train classes (19, or 25 with ``moving_classes``)."""
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"SemanticKITTI({len(self)}, split={self.split!r}, format={self.format!r})"
        )
