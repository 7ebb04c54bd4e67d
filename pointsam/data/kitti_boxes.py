r"""Point labels from 3D boxes: KITTI object scans and SqueezeSeg's KITTI raw frames.

Two kinds of real scans from drives the SemanticKITTI frames never saw carry
box-derived labels for cars, people and cyclists:

- a KITTI object scan (``velodyne/NNNNNN.bin``, ``label_2/NNNNNN.txt`` boxes,
  ``calib/NNNNNN.txt``): :func:`read_kitti_object`. A box is given in the
  rectified camera frame (bottom centre :math:`t`, size :math:`h, w, l`, yaw
  :math:`r_y` about the camera's y axis); a Velodyne point :math:`p` goes to
  that frame by :math:`q = R_0\,[T_{v \to c}\,[p; 1]]` and lies in the box when

  .. math::
      |u_x| \le l/2,\quad -h \le u_y \le 0,\quad |u_z| \le w/2,\qquad
      u = R_y(-r_y)\,(q - t).

  KITTI labels only what the left colour camera sees, so a point is scored only
  when it projects into the image (:math:`P_2`, ``image_size``) in front of the
  camera and outside every ``DontCare`` rectangle; inside a Car box it is car,
  outside every box it is "none of the boxed classes".
- a SqueezeSeg frame (``2011_09_26_0001_*.npy``, float32 (64, 512, 6): x, y, z,
  intensity, range, label with 0 = background, 1 = car, 2 = pedestrian,
  3 = cyclist, made from KITTI raw's boxes over the front 90 degrees):
  :func:`read_squeezeseg`. Every valid pixel (range > 0) is scored.

Both return a ``Data`` with ``pos`` (Velodyne frame, metres), ``x`` (the
remission), ``y`` in SemanticKITTI's train ids where a box says so (car 0,
person 5, bicyclist 6) and :data:`~pointsam.data.IGNORE_INDEX` (-1) elsewhere,
so that ``y`` can train those classes with unknown points ignored (never
counted as background), and ``scored`` [N] bool: where the box truth is
complete, so that a class's IoU against the boxes is defined
(:func:`pointsam.engine.metrics.box_iou`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from ._common import IGNORE_INDEX, CloudFormatError
from .io import read_kitti_bin

__all__ = ["KITTI_BOX_CLASSES", "read_kitti_object", "read_kitti_calib",
           "read_kitti_boxes", "read_squeezeseg", "BOXED_CLASSES"]

#: KITTI object types -> SemanticKITTI train id (car 0, person 5, bicyclist 6);
#: ``None``: a known type whose points are neither scored nor trained on (a van
#: is not SemanticKITTI's car, a tram not its other-vehicle for sure).
KITTI_BOX_CLASSES: dict[str, int | None] = {
    "Car": 0, "Pedestrian": 5, "Person_sitting": 5, "Cyclist": 6,
    "Van": None, "Truck": None, "Tram": None, "Misc": None, "DontCare": None,
}
#: The train ids that box truth covers: car, person, bicyclist.
BOXED_CLASSES = (0, 5, 6)
#: SqueezeSeg's label ids -> train ids (0 = outside every box).
_SQUEEZESEG = {1: 0, 2: 5, 3: 6}


def read_kitti_calib(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """``P2`` [3, 4], ``R0_rect`` [3, 3] and ``Tr_velo_to_cam`` [4, 4] (float64).

    Raises:
        FileNotFoundError: no calib file (the message says where it belongs).
        CloudFormatError: a missing or malformed matrix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such calib file (KITTI object data keeps "
                                "it as training/calib/NNNNNN.txt next to velodyne/)")
    rows: dict[str, np.ndarray] = {}
    for ln in path.read_text().splitlines():
        key, sep, vals = ln.partition(":")
        if sep and vals.strip():
            try:
                rows[key.strip()] = np.array(vals.split(), dtype=np.float64)
            except ValueError:
                raise CloudFormatError(f"{path}: {key.strip()} is not numbers") from None
    need = {"P2": 12, "R0_rect": 9, "Tr_velo_to_cam": 12}
    for key, n in need.items():
        if key not in rows or rows[key].size != n:
            got = rows[key].size if key in rows else "none"
            raise CloudFormatError(f"{path}: {key} must hold {n} numbers, got {got}")
    tr = np.eye(4)
    tr[:3] = rows["Tr_velo_to_cam"].reshape(3, 4)
    return {"P2": rows["P2"].reshape(3, 4), "R0_rect": rows["R0_rect"].reshape(3, 3),
            "Tr_velo_to_cam": tr}


def read_kitti_boxes(path: str | os.PathLike[str]) -> list[dict]:
    """The objects of a ``label_2`` file: ``type``, ``bbox`` (left, top, right,
    bottom pixels), ``hwl`` (metres), ``t`` (bottom centre, rectified camera
    frame) and ``ry`` (yaw about the camera's y axis).

    Raises:
        FileNotFoundError: no label file.
        CloudFormatError: a line that is not 15 fields, or an unknown type (the
            message lists the known ones).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such KITTI label file")
    out = []
    for i, ln in enumerate(path.read_text().splitlines(), 1):
        f = ln.split()
        if not f:
            continue
        if len(f) not in (15, 16):
            raise CloudFormatError(f"{path}:{i}: a KITTI object line has 15 fields "
                                   f"(type ... rotation_y), got {len(f)}")
        if f[0] not in KITTI_BOX_CLASSES:
            raise CloudFormatError(f"{path}:{i}: unknown object type {f[0]!r}; KITTI's "
                                   f"types are {', '.join(KITTI_BOX_CLASSES)}")
        v = np.array(f[1:15], dtype=np.float64)
        out.append({"type": f[0], "bbox": v[3:7], "hwl": v[7:10], "t": v[10:13],
                    "ry": float(v[13])})
    return out


def _in_box(q: np.ndarray, box: dict) -> np.ndarray:
    """Which rectified-camera points ``q`` [N, 3] lie in ``box`` [N] bool."""
    h, w, length = box["hwl"]
    c, s = np.cos(box["ry"]), np.sin(box["ry"])
    d = q - box["t"]  # [N, 3] relative to the bottom centre
    ux = c * d[:, 0] - s * d[:, 2]  # R_y(-ry): the box's own axes
    uz = s * d[:, 0] + c * d[:, 2]
    return (np.abs(ux) <= length / 2) & (d[:, 1] <= 0) & (d[:, 1] >= -h) & \
        (np.abs(uz) <= w / 2)


def read_kitti_object(velodyne: str | os.PathLike[str], label: str | os.PathLike[str],
                      calib: str | os.PathLike[str], *,
                      image_size: tuple[int, int] = (1242, 375)) -> Data:
    """A KITTI object scan with box-derived point labels (see the module).

    Args:
        velodyne, label, calib: The scan's ``.bin``, ``label_2`` and ``calib``.
        image_size: The left colour image's (width, height) in pixels (the KITTI
            object benchmark's 1242 x 375, give another for other images).

    Returns:
        ``Data(pos [N, 3], x [N, 1] remission, y [N], scored [N] bool)``.

    Raises:
        FileNotFoundError: a missing file (a missing calib names where it goes).
        CloudFormatError: a malformed scan, label or calib file.
    """
    pts = read_kitti_bin(velodyne)  # [N, 4]
    boxes = read_kitti_boxes(label)
    cal = read_kitti_calib(calib)
    n = pts.shape[0]
    hom = np.concatenate([pts[:, :3].astype(np.float64), np.ones((n, 1))], 1)  # [N, 4]
    q = (cal["R0_rect"] @ (cal["Tr_velo_to_cam"] @ hom.T)[:3]).T  # [N, 3] rect cam
    img = (cal["P2"] @ np.concatenate([q, np.ones((n, 1))], 1).T).T  # [N, 3]
    front = q[:, 2] > 0.1
    uv = img[:, :2] / np.where(front, img[:, 2], 1.0)[:, None]  # [N, 2] pixels
    width, height = image_size
    seen = front & (uv[:, 0] >= 0) & (uv[:, 0] < width) & (uv[:, 1] >= 0) & \
        (uv[:, 1] < height)
    y = np.full(n, IGNORE_INDEX, dtype=np.int64)
    scored = seen.copy()
    for b in boxes:
        if b["type"] == "DontCare":  # an image region nobody labelled
            x0, y0, x1, y1 = b["bbox"]
            scored &= ~((uv[:, 0] >= x0) & (uv[:, 0] <= x1) & (uv[:, 1] >= y0)
                        & (uv[:, 1] <= y1) & seen)
            continue
        inside = _in_box(q, b)
        cls = KITTI_BOX_CLASSES[b["type"]]
        if cls is None:  # a van, truck, tram, misc: neither truth nor background
            scored &= ~inside
        else:
            y[inside] = cls
    y[~scored] = IGNORE_INDEX  # a box reaching outside the image: unscored there
    return Data(pos=torch.from_numpy(pts[:, :3].copy()),
                x=torch.from_numpy(pts[:, 3:4].copy()), y=torch.from_numpy(y),
                scored=torch.from_numpy(scored))


def read_squeezeseg(path: str | os.PathLike[str]) -> Data:
    """A SqueezeSeg KITTI raw frame with its box-derived labels (see the module).

    Returns:
        ``Data(pos [N, 3], x [N, 1] intensity, y [N], scored [N] bool)`` over
        the N valid pixels (range > 0); ``scored`` is all True.

    Raises:
        CloudFormatError: not a (64, 512, 6) float array, or labels outside 0..3.
    """
    a = np.load(path, allow_pickle=False)
    if a.ndim != 3 or a.shape[2] != 6 or not np.issubdtype(a.dtype, np.floating):
        raise CloudFormatError(f"{path}: a SqueezeSeg frame is float (H, W, 6) "
                               f"x, y, z, intensity, range, label; got {a.dtype} "
                               f"{a.shape}")
    a = a.reshape(-1, 6)
    a = a[a[:, 4] > 0]  # [N, 6] valid pixels
    lab = a[:, 5].astype(np.int64)
    if lab.size and (lab.min() < 0 or lab.max() > 3):
        raise CloudFormatError(f"{path}: labels must be 0..3 (background, car, "
                               f"pedestrian, cyclist), got {sorted(set(lab))[:6]}")
    y = np.full(len(a), IGNORE_INDEX, dtype=np.int64)
    for src, dst in _SQUEEZESEG.items():
        y[lab == src] = dst
    return Data(pos=torch.from_numpy(a[:, :3].copy()),
                x=torch.from_numpy(a[:, 3:4].copy()), y=torch.from_numpy(y),
                scored=torch.ones(len(a), dtype=torch.bool))
