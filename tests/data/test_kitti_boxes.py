"""Point labels from boxes, read from the real KITTI object scan 004139 and the
real SqueezeSeg frames of KITTI raw drive 2011_09_26_0001."""

import numpy as np
import pytest
import torch

from pointsam.data import CloudFormatError
from pointsam.data.kitti_boxes import (
    read_kitti_boxes,
    read_kitti_calib,
    read_kitti_object,
    read_squeezeseg,
)

KITTI = "kitti_object_sample/training"
SQ = "squeezeseg_kitti_lidar2d/data/samples"


def _kitti(shared_data):
    k = shared_data / KITTI
    if not (k / "velodyne" / "004139.bin").is_file():
        pytest.skip(f"{k} is not there")
    return k


@pytest.mark.dataset
def test_kitti_object_scan_box_labels(shared_data):
    k = _kitti(shared_data)
    boxes = read_kitti_boxes(k / "label_2" / "004139.txt")
    kinds = [b["type"] for b in boxes]
    assert kinds.count("Car") == 5 and kinds.count("Pedestrian") == 16
    assert kinds.count("Cyclist") == 1 and kinds.count("DontCare") == 2
    d = read_kitti_object(k / "velodyne" / "004139.bin", k / "label_2" / "004139.txt",
                          k / "calib" / "004139.txt")
    assert d.pos.shape == (123266, 3) and d.scored.dtype == torch.bool
    # points inside the 5 car boxes (3 + 85 + 122 + 63 + 23), the 16 people, the
    # cyclist; all in the camera's view, in front of the car
    assert int((d.y == 0).sum()) == 296
    assert int((d.y == 5).sum()) == 1303 and int((d.y == 6).sum()) == 40
    assert bool(d.scored[d.y >= 0].all())
    front = d.pos[d.scored]
    assert float(front[:, 0].min()) > 0  # the camera looks along +x (Velodyne)
    assert 15000 < int(d.scored.sum()) < 30000  # ~ the 81-degree field of view
    cars = d.pos[d.y == 0]
    assert float(cars[:, 0].min()) > 20 and float(cars[:, 0].max()) < 62


@pytest.mark.dataset
def test_squeezeseg_frames(shared_data):
    files = sorted((shared_data / SQ).glob("2011_09_26_0001_*.npy"))
    if not files:
        pytest.skip(f"{shared_data / SQ} is not there")
    counts = []
    for f in files:
        d = read_squeezeseg(f)
        raw = np.load(f).reshape(-1, 6)
        valid = raw[raw[:, 4] > 0]
        assert d.pos.shape == (len(valid), 3) and bool(d.scored.all())
        assert int((d.y == 0).sum()) == int((valid[:, 5] == 1).sum())
        counts.append(int((d.y == 0).sum()))
    assert counts == [1858, 1579, 1328, 1027]


def test_bad_box_files_are_refused(tmp_path, shared_data):
    lab = tmp_path / "l.txt"
    lab.write_text("Spaceship 0 0 0 1 2 3 4 1 1 1 0 0 5 0\n")
    with pytest.raises(CloudFormatError, match="unknown object type 'Spaceship'"):
        read_kitti_boxes(lab)
    lab.write_text("Car 0 0\n")
    with pytest.raises(CloudFormatError, match="15 fields"):
        read_kitti_boxes(lab)
    with pytest.raises(FileNotFoundError, match="no such calib file"):
        read_kitti_calib(tmp_path / "calib.txt")
    (tmp_path / "calib.txt").write_text("P2: 1 2 3\n")
    with pytest.raises(CloudFormatError, match="P2 must hold 12 numbers"):
        read_kitti_calib(tmp_path / "calib.txt")
    bad = tmp_path / "sq.npy"
    np.save(bad, np.zeros((64, 512, 5), np.float32))
    with pytest.raises(CloudFormatError, match="SqueezeSeg frame"):
        read_squeezeseg(bad)


@pytest.mark.dataset
def test_cross_drive_check_scores_box_truth(shared_data):
    """An oracle that labels exactly the box points gets IoU 1; a model that
    calls everything car gets truth / scored points."""
    from pointsam.engine.crossdrive import cross_drive_check, cross_drive_scans

    _kitti(shared_data)
    scans = cross_drive_scans(shared_data)
    truth = {}

    class Oracle(torch.nn.Module):
        def forward(self, b):  # the truth of the scan with these exact points
            y = truth[b.pos.size(0)]
            out = torch.full((b.pos.size(0), 19), -9.0)
            out[torch.arange(len(y)), y.clamp(min=0) + 8 * (y < 0)] = 9.0
            return out

    for frames in scans.values():
        for d in frames:
            truth[d.pos.size(0)] = d.y
    r = cross_drive_check(Oracle(), scans, voxel_size=0.0, chunk_points=0)
    assert r["kitti_004139"]["car"]["iou"] == 1.0
    assert r["kitti_004139"]["person"]["iou"] == 1.0
    assert r["squeezeseg_0001"]["car"]["truth"] == 1858 + 1579 + 1328 + 1027

    class AllCar(torch.nn.Module):
        def forward(self, b):
            out = torch.zeros(b.pos.size(0), 19)
            out[:, 0] = 1.0
            return out

    r = cross_drive_check(AllCar(), scans, voxel_size=0.0, chunk_points=0)
    k = r["kitti_004139"]["car"]
    assert k["predicted"] == k["union"] and k["iou"] == pytest.approx(296 / k["union"])
