r"""The cross-drive check of a LiDAR model: car, person and cyclist IoU against
box-derived truth on drives its training frames never saw.

The two labelled SemanticKITTI frames are 5 s apart in one drive; a model tuned
on them is checked on real scans of other drives whose boxes give point truth
(:mod:`pointsam.data.kitti_boxes`):

- ``kitti_004139``: the KITTI object scan 004139 (5 cars, 16 pedestrians, a
  cyclist), scored inside the camera's field of view;
- ``squeezeseg_0001``: four frames of KITTI raw 2011_09_26 drive 0001
  (1,000-1,900 car points each, a few cyclists), front 90 degrees.

Each scan is labelled as ``pointsam predict`` labels it (:func:`predict_scan`,
the run's voxel and chunk sizes, every point), and each class's IoU
(:func:`~pointsam.engine.metrics.box_iou`) is pooled over a source's frames
(counts summed, then divided).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from pointsam.data.kitti_boxes import read_kitti_object, read_squeezeseg

from .inference import predict_scan
from .metrics import box_iou

__all__ = ["CROSS_DRIVE_CLASSES", "cross_drive_scans", "cross_drive_check"]

#: The classes box truth covers, by SemanticKITTI train id.
CROSS_DRIVE_CLASSES = {"car": 0, "person": 5, "bicyclist": 6}


def cross_drive_scans(root: str | Path) -> dict[str, list[Any]]:
    """``{source: [Data, ...]}`` of the check's scans under the data root
    (``../shared/data`` in this project); a source whose files are absent is
    left out.

    Raises:
        FileNotFoundError: none of the sources is there.
    """
    root = Path(root)
    out: dict[str, list[Any]] = {}
    k = root / "kitti_object_sample" / "training"
    if (k / "velodyne" / "004139.bin").is_file():
        out["kitti_004139"] = [read_kitti_object(
            k / "velodyne" / "004139.bin", k / "label_2" / "004139.txt",
            k / "calib" / "004139.txt")]
    sq = sorted((root / "squeezeseg_kitti_lidar2d" / "data" / "samples").glob(
        "2011_09_26_0001_*.npy"))
    if sq:
        out["squeezeseg_0001"] = [read_squeezeseg(p) for p in sq]
    if not out:
        raise FileNotFoundError(
            f"no cross-drive scan under {root}: expected kitti_object_sample/"
            "training/{velodyne,label_2,calib}/004139.* or squeezeseg_kitti_lidar2d/"
            "data/samples/2011_09_26_0001_*.npy")
    return out


def cross_drive_check(model: nn.Module, scans: dict[str, list[Any]], *,
                      voxel_size: float, chunk_points: int,
                      votes: int = 1) -> dict[str, Any]:
    """``{source: {class: {"iou", "tp", "union", "truth", "predicted"}}}`` plus
    ``"points"`` per source, for :func:`cross_drive_scans`' scans (``votes``:
    test-time passes of :func:`~pointsam.engine.inference.predict_scan`).

    The model sees ``pos`` only (as on the SemanticKITTI frames: no intensity).
    """
    from torch_geometric.data import Data

    model.eval()
    out: dict[str, Any] = {}
    for source, frames in scans.items():
        pooled = {c: {"tp": 0, "union": 0, "truth": 0, "predicted": 0}
                  for c in CROSS_DRIVE_CLASSES}
        points = 0
        for d in frames:
            prob = predict_scan(model, Data(pos=d.pos), voxel_size=voxel_size,
                                chunk_points=chunk_points, votes=votes)
            pred = prob.argmax(1)  # [N]
            points += int(d.pos.size(0))
            for name, cls in CROSS_DRIVE_CLASSES.items():
                r = box_iou(pred, d.y, d.scored, cls)
                for key in pooled[name]:
                    pooled[name][key] += r[key]
        for r in pooled.values():
            r["iou"] = r["tp"] / r["union"] if r["union"] else float("nan")
        out[source] = {**pooled, "points": points, "frames": len(frames)}
    return out
