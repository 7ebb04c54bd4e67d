"""Single-file readers: real sample files and malformed input."""

from pathlib import Path

import numpy as np
import pytest
import torch

from pointsam.data import CloudFormatError, read_cloud, read_kitti_bin, read_off
from pointsam.data.io import read_kitti_label, read_pcd, read_ply, sample_surface

PCD = "modelnet10_pcd_1024/ModelNet10/pcd/chair/test/chair_0890.pcd"


def test_pcd_binary_matches_open3d(shared_data):
    o3d = pytest.importorskip("open3d")
    d = read_cloud(shared_data / PCD)
    ref = np.asarray(o3d.io.read_point_cloud(str(shared_data / PCD)).points)
    assert d.pos.shape == (1024, 3) and d.pos.dtype == torch.float32
    assert np.array_equal(d.pos.numpy(), ref.astype(np.float32))
    raw = (shared_data / PCD).read_bytes()
    body = raw[raw.index(b"DATA binary\n") + 12 :]
    assert np.array_equal(np.frombuffer(body, "<f4").reshape(1024, 3), d.pos.numpy())


def test_pcd_ascii_with_fields(tmp_path):
    pts = np.array([[0, 0, 0, 1, 0, 0, 7], [1, 2, 3, 0, 1, 0, 8]], dtype=np.float64)
    p = tmp_path / "a.pcd"
    header = (
        "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z normal_x normal_y normal_z label\n"
        "SIZE 4 4 4 4 4 4 4\nTYPE F F F F F F U\nCOUNT 1 1 1 1 1 1 1\nWIDTH 2\n"
        "HEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2\nDATA ascii\n"
    )
    p.write_text(header + "\n".join(" ".join(f"{v:g}" for v in r) for r in pts) + "\n")
    d = read_pcd(p)
    assert d.pos.tolist() == pts[:, :3].tolist()
    assert d.x.tolist() == pts[:, 3:6].tolist() and d.y.tolist() == [7, 8]


@pytest.mark.parametrize("ascii_", [True, False])
def test_ply_written_by_open3d(tmp_path, ascii_):
    o3d = pytest.importorskip("open3d")
    g = np.random.default_rng(0)
    pts, nrm = g.normal(size=(50, 3)), g.normal(size=(50, 3))
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    pc.normals = o3d.utility.Vector3dVector(nrm)
    p = tmp_path / "c.ply"
    o3d.io.write_point_cloud(str(p), pc, write_ascii=ascii_)
    d = read_ply(p)
    assert np.allclose(d.pos.numpy(), pts, atol=1e-5)
    assert np.allclose(d.x.numpy(), nrm, atol=1e-5)


def test_xyz_npy_roundtrip(tmp_path):
    arr = np.arange(24, dtype=np.float32).reshape(6, 4)
    np.savetxt(tmp_path / "c.xyz", arr)
    np.save(tmp_path / "c.npy", arr)
    for name in ("c.xyz", "c.npy"):
        d = read_cloud(tmp_path / name)
        assert (
            d.pos.tolist() == arr[:, :3].tolist()
            and d.x.tolist() == arr[:, 3:].tolist()
        )


NUSC = ("mmdet3d_samples/tests/data/nuscenes/samples/LIDAR_TOP/"
        "n015-2018-08-02-17-16-37+0800__LIDAR_TOP__1533201470948018.pcd.bin")
WAYMO = "mmdet3d_samples/tests/data/waymo/kitti_format/training/velodyne/0000000.bin"
S3DIS = "mmdet3d_samples/tests/data/s3dis/points/Area_1_office_2.bin"


def test_bin_columns_nuscenes_waymo_s3dis(shared_data):
    # nuScenes *.pcd.bin: 5 columns by default (MANIFEST: 100 x 5, ring 0-31)
    d = read_cloud(shared_data / NUSC)
    assert d.pos.shape == (100, 3) and d.fields == ["intensity", "ring"]
    assert set(d.x[:, 1].tolist()) == set(float(i) for i in range(32))
    assert float(d.x[:, 0].max()) <= 255 and float(d.pos.abs().max()) < 100
    # Waymo in KITTI format is 800 x 6: read as 4 or 5 columns its timestamps
    # (~1.5e15) land in pos, so 6 is the one sensor-like width (and bin_columns=6)
    assert read_cloud(shared_data / WAYMO).x.shape == (800, 3)
    w = read_cloud(shared_data / WAYMO, bin_columns=6)
    assert w.pos.shape == (800, 3) and w.x.shape == (800, 3)
    assert float(w.pos.abs().max()) < 100
    s = read_cloud(shared_data / S3DIS, bin_columns=6)  # MANIFEST: 100 x 6 xyzrgb
    assert s.pos.shape == (100, 3) and float(s.x.max()) <= 255
    with pytest.raises(ValueError, match="bin_columns must be"):
        read_cloud(shared_data / S3DIS, bin_columns=2)


def test_xyz_ragged_rows_refused(tmp_path):
    p = tmp_path / "r.xyz"
    p.write_text("0 0 0\n1 1 1 1\n2 2\n")  # 9 values, as many as 3 x 3
    with pytest.raises(CloudFormatError, match=r"r\.xyz.*data row 2 has 4"):
        read_cloud(p)
    p.write_text("0,0,0\n1,1\n2,2,2,2\n")
    with pytest.raises(CloudFormatError, match="different numbers of columns"):
        read_cloud(p)


def test_pcd_binary_compressed(tmp_path):
    import open3d as o3d

    pts = np.random.default_rng(0).normal(size=(50, 3))
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    good = tmp_path / "good.pcd"
    o3d.io.write_point_cloud(str(good), pc, compressed=True)
    assert b"binary_compressed" in good.read_bytes()[:300]
    np.testing.assert_allclose(read_cloud(good).pos.numpy(), pts, atol=1e-6)
    bad = tmp_path / "bad.pcd"
    bad.write_bytes(b"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
                    b"WIDTH 2\nHEIGHT 1\nPOINTS 2\nDATA binary_compressed\n" + b"\0" * 20)
    with pytest.raises(CloudFormatError, match=r"bad\.pcd.*raw bytes"):
        read_cloud(bad)
    cut = tmp_path / "cut.pcd"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(CloudFormatError, match=r"cut\.pcd.*truncated"):
        read_cloud(cut)


def test_kitti_scan_size(shared_data):
    d = read_cloud(shared_data / "kitti_object_sample/training/velodyne/004139.bin")
    assert d.pos.shape == (123266, 3) and d.x.shape == (123266, 1)
    assert 0 <= float(d.x.min()) and float(d.x.max()) < 1
    assert float(d.pos.abs().max()) < 100


def test_las_points_and_classes(shared_data):
    pytest.importorskip("laspy")
    d = read_cloud(shared_data / "laspy_testdata/tests/data/simple.las")
    assert d.pos.shape == (1065, 3)
    assert set(d.y.tolist()) == {1, 2}
    assert int((d.y == 1).sum()) == 789 and int((d.y == 2).sum()) == 276
    absolute = d.pos.double() + d.origin
    assert (
        635_000 < float(absolute[:, 0].min()) and float(absolute[:, 0].max()) < 639_100
    )
    assert 406 < float(absolute[:, 2].min()) and float(absolute[:, 2].max()) < 587


@pytest.mark.parametrize("name", ["bathtub_0001", "bathtub_0002", "bathtub_0003"])
def test_merged_off_header_equals_clean_copy(shared_data, name):
    merged = (
        shared_data / f"modelnet40_off_samples_flat/dataset_samples/bathtub/{name}.off"
    )
    clean = shared_data / f"ModelNet10/bathtub/train/{name}.off"
    assert merged.read_text()[3].isdigit()  # the merged header "OFF3514 3546 0"
    assert clean.read_text().startswith("OFF\n")
    v1, f1 = read_off(merged)
    v2, f2 = read_off(clean)
    assert v1.shape[1] == 3 and f1.shape[1] == 3 and len(f1) > 0
    assert np.array_equal(v1, v2) and np.array_equal(f1, f2)


def test_off_counts_match_header(shared_data):
    v, f = read_off(shared_data / "ModelNet10/bathtub/train/bathtub_0001.off")
    assert v.shape == (3514, 3) and f.shape == (3546, 3)


def test_off_quads_and_polygons(tmp_path):
    p = tmp_path / "q.off"
    p.write_text(
        "OFF\n# comment\n5 2 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n2 2 0\n"
        "4 0 1 2 3\n3 1 4 2 255 0 0\n"
    )
    v, f = read_off(p)
    assert f.tolist() == [[0, 1, 2], [0, 2, 3], [1, 4, 2]]


def test_sample_surface_area_weighted_unit_normals():
    # two unit squares' worth of triangles: one of area 1 in z=0, one of area 3 in x=0
    v = np.array([[0, 0, 0], [2, 0, 0], [0, 1, 0], [0, 0, 0], [0, 3, 0], [0, 0, 2.0]])
    f = np.array([[0, 1, 2], [3, 4, 5]])
    pts, nrm = sample_surface(v, f, 4000, np.random.default_rng(0))
    on_second = np.isclose(pts[:, 0], 0) & ~np.isclose(pts[:, 2], 0)
    assert abs(on_second.mean() - 0.75) < 0.03
    assert np.allclose(np.linalg.norm(nrm, axis=1), 1)
    assert np.allclose(np.abs(nrm[~on_second]), [0, 0, 1])


# --------------------------------------------------------------- malformed input
def test_truncated_bin_names_file(tmp_path):
    p = tmp_path / "000001.bin"
    np.zeros((10, 4), np.float32).tofile(p)
    p.write_bytes(p.read_bytes()[:-6])
    with pytest.raises(CloudFormatError, match=r"000001\.bin.*truncated"):
        read_kitti_bin(p)


def test_label_length_mismatch_names_file(tmp_path):
    p = tmp_path / "000001.label"
    np.zeros(7, np.uint32).tofile(p)
    with pytest.raises(
        CloudFormatError, match=r"000001\.label.*mismatch.*7 labels.*10"
    ):
        read_kitti_label(p, 10)


@pytest.mark.parametrize(
    "text", ["PLY\n3 1 0\n", "OFF\nthree 1 0\n", "OFF\n3 1 0\n0 0 0\n"]
)
def test_bad_off_names_file(tmp_path, text):
    p = tmp_path / "bad.off"
    p.write_text(text)
    with pytest.raises(CloudFormatError, match=r"bad\.off"):
        read_off(p)


@pytest.mark.parametrize("suffix", [".off", ".pcd", ".ply", ".xyz", ".bin", ".npy"])
def test_empty_file_names_file(tmp_path, suffix):
    p = tmp_path / f"empty{suffix}"
    p.write_bytes(b"")
    reader = read_off if suffix == ".off" else read_cloud
    with pytest.raises(CloudFormatError, match=r"empty"):
        reader(p)


@pytest.mark.parametrize("suffix", [".xyz", ".npy"])
def test_nan_coordinates_name_file(tmp_path, suffix):
    arr = np.array([[0, 0, 0], [np.nan, 1, 2], [1, 1, 1]], np.float32)
    p = tmp_path / f"nan{suffix}"
    np.save(p, arr) if suffix == ".npy" else np.savetxt(p, arr)
    with pytest.raises(CloudFormatError, match=rf"nan\{suffix}.*1 points have NaN"):
        read_cloud(p)


def test_truncated_pcd_and_unknown_suffix(tmp_path, shared_data):
    p = tmp_path / "t.pcd"
    p.write_bytes((shared_data / PCD).read_bytes()[:-100])
    with pytest.raises(CloudFormatError, match=r"t\.pcd.*truncated"):
        read_cloud(p)
    with pytest.raises(ValueError, match="unknown point-cloud suffix"):
        read_cloud(Path(tmp_path / "x.abc"))
