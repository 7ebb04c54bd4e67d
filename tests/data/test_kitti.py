"""SemanticKITTI: learning map, layouts, multi-scan alignment, malformed files."""

import numpy as np
import pytest
import torch
import yaml

from pointsam.data import CloudFormatError, DatasetNotFoundError, SemanticKITTI
from pointsam.data.kitti import semantic_kitti_config

SEQ = "mmdet3d_samples/tests/data/semantickitti"


def test_shipped_yaml_is_the_official_file(shared_data):
    official = shared_data / "semantic_kitti_config/config/semantic-kitti.yaml"
    assert semantic_kitti_config() == yaml.safe_load(official.read_text())


def test_fifty_point_scan_maps_to_train_ids(shared_data):
    root = shared_data / SEQ
    cfg = yaml.safe_load(
        (shared_data / "semantic_kitti_config/config/semantic-kitti.yaml").read_text()
    )
    raw = np.fromfile(root / "sequences/00/labels/000000.label", dtype=np.uint32)
    sem = raw & 0xFFFF
    expected = [cfg["learning_map"][int(v)] - 1 for v in sem]  # 0 (unlabeled) -> -1
    ds = SemanticKITTI(root, sequences=["00"])
    assert len(ds) == 1 and ds.num_classes == 19
    d = ds[0]
    assert d.pos.shape == (50, 3) and d.x.shape == (50, 1) and d.y.shape == (50,)
    assert d.y.tolist() == expected
    assert set(sem.tolist()) == {0, 50, 52, 70, 71, 80}
    # building, vegetation, trunk, pole; 0 and 52 (other-structure) are ignored
    assert set(d.y.tolist()) == {-1, 12, 14, 15, 17}
    assert [ds.classes[i] for i in (12, 14, 15, 17)] == [
        "building",
        "vegetation",
        "trunk",
        "pole",
    ]
    scan = np.fromfile(root / "sequences/00/velodyne/000000.bin", np.float32).reshape(
        -1, 4
    )
    assert np.array_equal(d.pos.numpy(), scan[:, :3]) and np.array_equal(
        d.x.numpy()[:, 0], scan[:, 3]
    )
    assert (d.instance == 0).all()
    raw_ds = SemanticKITTI(root, sequences=["00"], remap=False)
    assert raw_ds[0].y.tolist() == sem.tolist()


def test_split_uses_present_sequences(shared_data):
    with pytest.warns(UserWarning, match=r"sequences \['01'.*missing"):
        ds = SemanticKITTI(shared_data / SEQ, "train")
    assert ds.sequences == ["00"] and "01" in ds.missing_sequences
    with pytest.raises(DatasetNotFoundError, match=r"sequences/08/velodyne.*README"):
        SemanticKITTI(shared_data / SEQ, "val")
    with pytest.raises(ValueError, match="one of"):
        SemanticKITTI(shared_data / SEQ, "training")
    with pytest.raises(DatasetNotFoundError, match=r"SemanticKITTI.*README"):
        SemanticKITTI(shared_data / "nowhere")


def test_open3d_ml_npy_frames(shared_data):
    ds = SemanticKITTI(shared_data / "open3d_ml_demo_data/examples/demo_data")
    assert ds.format == "npy" and len(ds) == 2
    d = ds[0]
    assert d.pos.shape == (85962, 3) and d.y.shape == (85962,)
    assert set(d.y.tolist()) == {
        c - 1 for c in (0, 1, 2, 5, 6, 9, 11, 13, 14, 15, 16, 17, 18, 19)
    }
    assert ds[1].pos.shape == (86139, 3)


def _write_sequence(root, scans, labels, poses, seq="00"):
    d = root / "sequences" / seq
    (d / "velodyne").mkdir(parents=True)
    (d / "labels").mkdir()
    for i, (s, lab) in enumerate(zip(scans, labels)):
        s.astype(np.float32).tofile(d / "velodyne" / f"{i:06d}.bin")
        lab.astype(np.uint32).tofile(d / "labels" / f"{i:06d}.label")
    # Tr: Velodyne -> camera (x fwd, y left, z up) -> (x right, y down, z fwd)
    tr = np.array([[0, -1, 0, 0.1], [0, 0, -1, -0.2], [1, 0, 0, 0.3]], float)
    (d / "calib.txt").write_text(
        "P0: " + " ".join(["0"] * 12) + "\nTr: " + " ".join(map(str, tr.ravel())) + "\n"
    )
    tr4 = np.vstack([tr, [0, 0, 0, 1]])
    cam = [tr4 @ p @ np.linalg.inv(tr4) for p in poses]  # camera-frame poses
    (d / "poses.txt").write_text(
        "\n".join(" ".join(map(str, c[:3].ravel())) for c in cam) + "\n"
    )


def test_multi_scan_aligns_static_points(tmp_path):
    g = np.random.default_rng(0)
    world = g.uniform(-10, 10, size=(40, 3))  # a static scene
    poses = []  # lidar -> world, driving along x and turning
    for t in range(3):
        a = 0.1 * t
        p = np.eye(4)
        p[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
        p[:3, 3] = [2.0 * t, 0.5 * t, 0]
        poses.append(p)
    scans, labels = [], []
    for t, p in enumerate(poses):
        local = (np.linalg.inv(p) @ np.c_[world, np.ones(40)].T).T[:, :3]
        scans.append(np.c_[local, np.full(40, t / 10)])
        labels.append(np.full(40, 10 + (t << 16)))  # car, instance t
    _write_sequence(tmp_path, scans, labels, poses)
    ds = SemanticKITTI(tmp_path, sequences=[0], num_scans=3)
    d = ds[2]
    assert (
        d.pos.shape == (120, 3) and d.frame.tolist() == [0] * 40 + [1] * 40 + [2] * 40
    )
    assert d.poses.shape == (1, 3, 4, 4)
    for t in range(3):  # every scan lands on the newest scan's frame
        assert torch.allclose(d.pos[d.frame == t], d.pos[d.frame == 0], atol=1e-4)
    assert torch.allclose(d.x[d.frame == 1, 0], torch.full((40,), 0.1))
    assert (d.y == 0).all() and d.instance[d.frame == 2].eq(0).all()
    first = ds[0]  # at the sequence start the oldest available scan repeats
    assert first.frame.tolist() == [0] * 40 + [1] * 40 + [2] * 40
    assert torch.allclose(first.pos[first.frame == 2], first.pos[first.frame == 0])


def test_malformed_scans_name_the_file(tmp_path):
    scans = [np.zeros((10, 4))]
    _write_sequence(tmp_path, scans, [np.zeros(9)], [np.eye(4)])
    with pytest.raises(CloudFormatError, match=r"000000\.label.*mismatch"):
        SemanticKITTI(tmp_path, sequences=["00"])[0]
    binf = tmp_path / "sequences/00/velodyne/000000.bin"
    binf.write_bytes(binf.read_bytes()[:-3])
    with pytest.raises(CloudFormatError, match=r"000000\.bin.*truncated"):
        SemanticKITTI(tmp_path, sequences=["00"])[0]
    np.full((10, 4), np.nan, np.float32).tofile(binf)
    with pytest.raises(CloudFormatError, match=r"000000\.bin.*NaN"):
        SemanticKITTI(tmp_path, sequences=["00"])[0]
    np.array([7] * 10, np.uint32).tofile(tmp_path / "sequences/00/labels/000000.label")
    np.zeros((10, 4), np.float32).tofile(binf)
    assert SemanticKITTI(tmp_path, sequences=["00"])[0].y.eq(-1).all()  # 7: unknown


def test_moving_classes_on_the_real_sample(shared_data):
    """The real 50-point scan (static classes only) reads the same with the
    multi-scan benchmark's 25 classes."""
    root = shared_data / SEQ
    plain = SemanticKITTI(root, sequences=["00"])[0]
    ds = SemanticKITTI(root, sequences=["00"], moving_classes=True)
    assert ds.num_classes == 25 and ds.classes[19] == "moving-car"
    assert ds.classes[19:] == ("moving-car", "moving-bicyclist", "moving-person",
                               "moving-motorcyclist", "moving-other-vehicle",
                               "moving-truck")
    assert torch.equal(ds[0].y, plain.y)


def test_moving_classes_in_a_sequence_with_poses(tmp_path):
    """Raw 252-259 keep their moving classes (semantic-kitti-all.yaml), in every
    scan of a multi-scan sample; without moving_classes they fold into car,
    person, other-vehicle, truck."""
    g = np.random.default_rng(1)
    raw = np.array([10, 252, 253, 254, 255, 256, 257, 258, 259, 30, 0, 40])
    scans = [np.c_[g.uniform(-5, 5, (12, 3)), np.zeros(12)] for _ in range(2)]
    labels = [raw + (7 << 16), raw]
    _write_sequence(tmp_path, scans, labels, [np.eye(4), np.eye(4)])
    ds = SemanticKITTI(tmp_path, sequences=[0], num_scans=2, moving_classes=True)
    d = ds[1]
    want = [0, 19, 20, 21, 22, 23, 23, 24, 23, 5, -1, 8]
    assert d.y[d.frame == 0].tolist() == want and d.y[d.frame == 1].tolist() == want
    folded = SemanticKITTI(tmp_path, sequences=[0])[0].y.tolist()
    assert folded == [0, 0, 6, 5, 7, 4, 4, 3, 4, 5, -1, 8]
    (tmp_path / "sequences" / "00" / "poses.txt").unlink()
    with pytest.raises(FileNotFoundError, match="poses.txt"):
        SemanticKITTI(tmp_path, sequences=[0], num_scans=2, moving_classes=True)
    with pytest.raises(ValueError, match="moving_classes must be True or False"):
        SemanticKITTI(tmp_path, sequences=[0], moving_classes="yes")
