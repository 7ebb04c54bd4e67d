"""The width of a ``.bin`` scan is judged from the geometry of each reading.

Issue 27, section 4: a KITTI scan written with two extra columns was read as 4
columns (184,899 scrambled points) and labelled without a word. Each test
writes the real KITTI scan (123,266 points) with 4, 5 or 6 columns.
"""

from __future__ import annotations

import numpy as np
import pytest

from pointsam.data import CloudFormatError, read_cloud
from pointsam.data.io import infer_bin_columns

KITTI = "kitti_object_sample/training/velodyne/004139.bin"
#: every .bin of the shared data with its width from MANIFEST.md
SAMPLES = {
    KITTI: 4,
    "mmdet3d_samples/demo/data/kitti/000008.bin": 4,
    "mmdet3d_samples/tests/data/kitti/training/velodyne/000000.bin": 4,
    "mmdet3d_samples/tests/data/semantickitti/sequences/00/velodyne/000000.bin": 4,
    "mmdet3d_samples/demo/data/nuscenes/"
    "n015-2018-07-24-11-22-45+0800__LIDAR_TOP__1532402927647951.pcd.bin": 5,
    "mmdet3d_samples/tests/data/nuscenes/sweeps/LIDAR_TOP/"
    "n008-2018-09-18-12-07-26-0400__LIDAR_TOP__1537287083900561.pcd.bin": 5,
    "mmdet3d_samples/tests/data/waymo/kitti_format/training/velodyne/0000000.bin": 6,
    "mmdet3d_samples/tests/data/s3dis/points/Area_1_office_2.bin": 6,
    "mmdet3d_samples/tests/data/scannet/points/scene0000_00.bin": 6,
    "mmdet3d_samples/demo/data/scannet/scene0000_00.bin": 6,
    "mmdet3d_samples/demo/data/sunrgbd/000017.bin": 6,
}


@pytest.fixture
def kitti(shared_data):
    return np.fromfile(shared_data / KITTI, dtype="<f4").reshape(-1, 4)  # [N, 4]


def _widen(scan, extra):
    """The scan with ``extra`` further columns: copies of the remission, then zeros."""
    cols = [scan] + [scan[:, 3:] if i == 0 else np.zeros_like(scan[:, 3:])
                     for i in range(extra)]
    return np.hstack(cols).astype("<f4")


def test_a_normal_kitti_scan_reads_as_before(shared_data, kitti):
    d = read_cloud(shared_data / KITTI)
    assert d.fields == ["remission"] and d.x.shape == (123266, 1)
    assert np.array_equal(d.pos.numpy(), kitti[:, :3])


@pytest.mark.parametrize("extra", [1, 2])
@pytest.mark.parametrize("rows", [123266, 123240])  # 123,240: fits 4, 5 and 6
def test_kitti_with_extra_columns_is_read_with_its_width(tmp_path, kitti, extra, rows):
    scan = _widen(kitti[:rows], extra)  # [rows, 4 + extra]
    p = tmp_path / "wide.bin"
    scan.tofile(p)
    d = read_cloud(p)
    assert d.pos.shape == (rows, 3) and d.x.shape == (rows, 1 + extra)
    assert np.array_equal(d.pos.numpy(), kitti[:rows, :3])


def test_six_columns_of_zeros_and_the_4_column_cut(tmp_path, kitti):
    scan = np.hstack([kitti, np.zeros((len(kitti), 2), "<f4")])
    scan.tofile(tmp_path / "z.bin")
    assert read_cloud(tmp_path / "z.bin").x.shape == (123266, 3)
    kitti[:123240].tofile(tmp_path / "cut.bin")  # 4, 5 and 6 all fit the size
    assert infer_bin_columns(tmp_path / "cut.bin") == 4


def test_bin_columns_settles_it(tmp_path, kitti):
    p = tmp_path / "six.bin"
    _widen(kitti, 2).tofile(p)
    d = read_cloud(p, bin_columns=4)  # what was asked, scrambled or not
    assert d.pos.shape == (184899, 3)


def test_no_sensor_like_reading_is_refused_with_each_width(tmp_path, kitti):
    far = kitti.copy()
    far[:, :2] += 5000.0  # map coordinates, not a sensor frame
    p = tmp_path / "far.bin"
    far.tofile(p)
    with pytest.raises(CloudFormatError) as info:
        read_cloud(p)
    msg = str(info.value)
    assert "no reading as float32 columns looks like a sensor scan" in msg
    assert "4 columns: 99% of the points within" in msg
    assert "5 columns: 1972256 bytes is not a multiple of 20" in msg
    assert "--bin-columns N" in msg
    assert read_cloud(p, bin_columns=4).pos.shape == (123266, 3)


def test_two_plausible_readings_are_refused(shared_data):
    # SUN RGB-D, 100 points of x y z (y > 0, forward) and r g b in [0, 1]:
    # read as 4 columns the 4th takes r, y, b in turn, all in [0, 255]; with 100
    # rows the row phases cannot tell 4 from 6
    p = shared_data / "mmdet3d_samples/tests/data/sunrgbd/points/000001.bin"
    with pytest.raises(CloudFormatError, match=r"cannot tell how many float32 "
                       r"columns it holds, 2 readings look like a scan \(4 columns: "
                       r"plausible .*6 columns: plausible"):
        read_cloud(p)
    assert read_cloud(p, bin_columns=6).x.shape == (100, 3)


@pytest.mark.parametrize("rel, width", sorted(SAMPLES.items()))
def test_every_shared_scan_gets_its_manifest_width(shared_data, rel, width):
    assert infer_bin_columns(shared_data / rel, 5 if rel.endswith(".pcd.bin") else 4) \
        == width


def test_uniform_noise_keeps_the_default(tmp_path):
    # every column alike under 4 and 5 columns: the data cannot tell, 4 stays
    p = tmp_path / "noise.bin"
    np.random.default_rng(0).random((1000, 4)).astype("<f4").tofile(p)
    assert infer_bin_columns(p) == 4
