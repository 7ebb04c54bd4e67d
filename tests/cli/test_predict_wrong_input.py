"""``pointsam predict`` on the wrong kind of input (issue 27, section 4): a y-up
object (``--up-axis``), a street scan given to an object classifier (a warning),
a LiDAR scan written with extra columns (read with its width)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pointsam.cli import main
from pointsam.data import ModelNet
from pointsam.data.io import read_off, read_pcd, sample_surface
from pointsam.engine.predict import scene_like, warn_out_of_distribution

MODELNET = "pointnet2_lite_cbam_modelnet10"
LIDAR = "pointnet2_lite_lidarseg_kitti"
KITTI = "kitti_object_sample/training/velodyne/004139.bin"
RESAMPLED = "modelnet40_normal_resampled"
MODELNET10 = ("bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand",
              "sofa", "table", "toilet")


@pytest.fixture(scope="module")
def classifier():
    from pointsam.engine.pretrained import load_pretrained_trained

    return load_pretrained_trained(MODELNET)


def _predict(capsys, *argv):
    rc = main(["predict", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ------------------------------------------------------------------ up axis
def test_up_axis_y_gives_the_class_of_the_canonical_reading(shared_data, tmp_path,
                                                            capsys, classifier):
    """A y-up .txt with ``--up-axis y`` gets the class of the reader's z-up
    sample, on the 10 ModelNet10 classes of the resampled set."""
    from pointsam.engine.predict import predict_cloud

    model, task, cfg, meta = classifier
    root = shared_data / RESAMPLED
    files = [sorted((root / c).glob("*.txt"))[0] for c in MODELNET10]
    ds = ModelNet(root, "40", "test", num_points=None, file_list=[f.stem for f in files])
    same = 0
    for f, d in zip(files, ds):
        want = meta["class_names"][predict_cloud(model, task, cfg, d)["label"]]
        out = tmp_path / f"{f.stem}.ply"
        rc, text, err = _predict(capsys, "--model", MODELNET, f, "--up-axis", "y",
                                 "--out", out)
        assert rc == 0 and "turned y up to z up: (x, y, z) -> (x, -z, y)" in text
        assert "warning" not in err, err
        got = json.loads(out.with_suffix(".json").read_text())["name"]
        same += got == want
        # the output keeps the file's own coordinates
        if f.parent.name == "chair":
            from pointsam.viz import read_ply

            ply = read_ply(out)
            xyz = np.stack([ply["x"], ply["y"], ply["z"]], 1)
            raw = np.loadtxt(f, delimiter=",")[:, :3]
            assert np.allclose(xyz, raw, atol=1e-6)
    assert same == 10


# ------------------------------------------------------ scene into a classifier
def test_a_street_scan_given_to_the_object_classifier_warns(shared_data, tmp_path,
                                                            capsys):
    rc, text, err = _predict(capsys, "--model", MODELNET, shared_data / KITTI,
                             "--out", tmp_path / "o.ply")
    assert rc == 0 and "class:" in text
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pointsam: warning: this cloud "
                                                   "looks like a LiDAR scene"), err
    for what in ("123,266 points", "on its ground plane", "modelnet10 objects of 512 "
                 "points", "unit sphere, z up", "out of distribution"):
        assert what in lines[0], what


def test_modelnet_shapes_in_any_unit_are_not_scenes(shared_data):
    """Every ModelNet10 PCD shape (raw units up to 1e5) fails the scene rule; so
    do the OFF meshes (up to +-1235) as vertices and as 20,000-point samples."""
    pcd = sorted((shared_data / "modelnet10_pcd_1024").rglob("*.pcd"))
    assert len(pcd) == 4899
    scenes = [f.name for f in pcd if scene_like(read_pcd(f).pos) is not None]
    assert scenes == []
    offs = sorted(shared_data.glob("ModelNet*/*/*/*.off")) + sorted(
        shared_data.glob("modelnet40_off_samples_flat/*/*/*.off"))
    assert len(offs) == 20
    for f in offs:
        v, faces = read_off(f)
        pts, _ = sample_surface(v, faces, 20000, np.random.default_rng(0))
        for p in (v, pts):
            assert scene_like(torch.from_numpy(p)) is None, f.name


def test_warning_rule_on_meshes_and_scans(shared_data, classifier, recwarn):
    _, task, cfg, _ = classifier
    from torch_geometric.data import Data

    v, _ = read_off(shared_data / "modelnet40_off_samples_flat/dataset_samples/"
                    "airplane/airplane_0003.off")  # 42,472 vertices, +-1235
    warn_out_of_distribution(task, cfg, Data(pos=torch.from_numpy(v).float()))
    assert not recwarn.list
    scan = np.fromfile(shared_data / KITTI, dtype="<f4").reshape(-1, 4)
    with pytest.warns(UserWarning, match="looks like a LiDAR scene"):
        warn_out_of_distribution(task, cfg, Data(pos=torch.from_numpy(scan[:, :3])))
    near = scan[np.linalg.norm(scan[:, :3], axis=1) < 3][:4000]  # few points: quiet
    warn_out_of_distribution(task, cfg, Data(pos=torch.from_numpy(near[:, :3])))
    assert not [w for w in recwarn.list if "LiDAR" in str(w.message)]


def test_an_off_sample_in_raw_units_predicts_without_warning(shared_data, tmp_path,
                                                             capsys):
    v, faces = read_off(shared_data / "ModelNet10/table/test/table_0393.off")
    pts, _ = sample_surface(v, faces, 10000, np.random.default_rng(0))  # +-825
    f = tmp_path / "table.xyz"
    np.savetxt(f, pts)
    rc, text, err = _predict(capsys, "--model", MODELNET, f, "--out", tmp_path / "t.ply")
    assert rc == 0 and err == "" and "class: table" in text


# ------------------------------------------------------------ extra columns
def test_a_six_column_kitti_scan_is_labelled_as_six(shared_data, tmp_path, capsys):
    scan = np.fromfile(shared_data / KITTI, dtype="<f4").reshape(-1, 4)
    near = scan[np.argsort(np.linalg.norm(scan[:, :3], axis=1), kind="stable")[:6000]]
    six = np.hstack([near, near[:, 3:], np.zeros_like(near[:, 3:])])  # [6000, 6]
    p = tmp_path / "six.bin"
    six.astype("<f4").tofile(p)
    rc, text, err = _predict(capsys, "--model", LIDAR, p, "--out", tmp_path / "o.ply")
    assert rc == 0, err
    assert "read 6 columns: x y z feature0 feature1 feature2 (6000 points)" in text
    assert "6000 points labelled" in text
