"""Real SemanticKITTI frames in learning-map space and the LiDAR training crops."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

from pointsam.data import CloudFormatError
from pointsam.data.kitti import class_names
from pointsam.data.lidar_frames import (
    LidarCrops,
    map_synthetic_labels,
    read_learning_frame,
    split_region,
)
from pointsam.data.synthetic.lidar import LIDAR_CLASSES, SYNTHETIC_TO_SEMANTICKITTI
from pointsam.engine.tasks import class_weights
from tests.tolerance import reduction_atol

DEMO = "open3d_ml_demo_data/examples/demo_data"


def test_real_frame_reads_with_learning_map_ids(shared_data):
    d = read_learning_frame(shared_data / DEMO / "points/000700.npy",
                            shared_data / DEMO / "labels/000700.npy")
    assert d.pos.shape == (85962, 3) and d.pos.dtype == torch.float32
    counts = torch.bincount(d.y + 1, minlength=20)  # shift -1 (unlabeled) to 0
    # the MANIFEST's classes {0,1,2,5,6,9,11,13,14,15,16,17,18,19}, exact counts
    assert counts[0] == 2025 and counts[1] == 1654 and counts[9] == 17934
    assert counts[15] == 28992 and counts[3] == 0
    assert int(d.y.min()) == -1 and int(d.y.max()) == 18


def _write(tmp_path, pts, lab=None):
    np.save(tmp_path / "p.npy", pts)
    if lab is None:
        return tmp_path / "p.npy", None
    np.save(tmp_path / "l.npy", lab)
    return tmp_path / "p.npy", tmp_path / "l.npy"


@pytest.mark.parametrize("pts, lab, fragment", [
    (np.zeros((4, 2), np.float32), None, "must be [N, 3]"),
    (np.zeros((0, 3), np.float32), None, "empty scan"),
    (np.zeros((4, 3), np.float32), np.zeros((5, 1), np.int32), "5 labels for 4 points"),
    (np.zeros((2, 3), np.float32), np.array([3, 20], np.int32), "outside the learning map"),
    (np.zeros((2, 3), np.float32), np.array([3, -1], np.int32), "outside the learning map"),
    (np.zeros((2, 3), np.float32), np.zeros((2, 2), np.int32), "integers [N] or [N, 1]"),
    (np.full((2, 3), np.nan, np.float32), None, "NaN or Inf"),
])
def test_bad_frames_are_refused(tmp_path, pts, lab, fragment):
    with pytest.raises(CloudFormatError, match=fragment.replace("[", r"\[")
                       .replace("]", r"\]")):
        read_learning_frame(*_write(tmp_path, pts, lab))


def test_extra_columns_are_dropped(tmp_path):
    d = read_learning_frame(*_write(tmp_path, np.arange(8, dtype=np.float32)
                                    .reshape(2, 4), np.array([0, 19])))
    assert d.pos.tolist() == [[0, 1, 2], [4, 5, 6]] and d.y.tolist() == [-1, 18]


def test_synthetic_mapping_names():
    names = class_names()
    got = [names[i] for i in SYNTHETIC_TO_SEMANTICKITTI]
    assert got == ["terrain", "road", "sidewalk", "building", "car", "pole",
                   "vegetation", "person"]
    assert len(SYNTHETIC_TO_SEMANTICKITTI) == len(LIDAR_CLASSES)
    assert map_synthetic_labels(torch.tensor([1, 4, 7])).tolist() == [8, 0, 5]


def test_split_region_is_a_partition():
    d = Data(pos=torch.arange(30.0).view(10, 3), y=torch.arange(10))
    rest, held = split_region(d, 1, 10.0)
    assert held.y.tolist() == [0, 1, 2] and rest.y.tolist() == list(range(3, 10))
    assert d.y.numel() == 10  # the input is untouched


def _scene(n=5000, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 3, generator=g) * torch.tensor([80.0, 80.0, 4.0]) + 1000
    return Data(pos=pos, y=(pos[:, 2] > 1002).long())


def test_crops_are_centred_bounded_and_reproducible():
    ds = LidarCrops([_scene()], num_samples=5, radius=10.0, max_points=300,
                    voxel_size=0.0, augment=False, seed=3)
    a, b = ds[2], ds[2]
    assert torch.equal(a.pos, b.pos) and torch.equal(a.y, b.y)
    for i in range(5):
        c = ds[i]
        assert c.pos.size(0) <= 300 and c.y.numel() == c.pos.size(0)
        # centred: no absolute coordinate, up to the rounding of the crop's float32
        # mean of n coordinates <= 1080 m (9e-3 m at n = 300: 8e-6 of the coordinates)
        tol = reduction_atol(1080.0, c.pos.size(0))
        assert c.pos.mean(0).abs().max() < tol
        ext = c.pos[:, :2].max(0).values - c.pos[:, :2].min(0).values
        assert (ext <= 20.0 + 1e-4).all()  # inside a cylinder of radius 10
        # labels are the scene's own: y = (z > 1002) with the same centring shift
        assert ((c.pos[:, 2] - c.pos[:, 2].min()) >= 0).all()


def test_augmentation_keeps_heights_up_to_scale_and_labels():
    base = LidarCrops([_scene()], num_samples=8, radius=10.0, max_points=400,
                      voxel_size=0.0, augment=False, seed=1)
    aug = LidarCrops([_scene()], num_samples=8, radius=10.0, max_points=400,
                     voxel_size=0.0, augment=True, seed=1)
    for i in range(8):
        p, q = base[i], aug[i]
        assert torch.equal(p.y, q.y)
        ratio = q.pos[:, 2].std() / p.pos[:, 2].std()
        assert 0.89 < float(ratio) < 1.11  # isotropic scale in [0.9, 1.1], z kept up
        assert not torch.allclose(p.pos, q.pos)


def test_crop_mixture_draws_from_both_pools():
    real = Data(pos=torch.rand(500, 3) * 10, y=torch.zeros(500, dtype=torch.long))
    syn = Data(pos=torch.rand(500, 3) * 10, y=torch.ones(500, dtype=torch.long))
    ds = LidarCrops([real], [syn], num_samples=200, real_fraction=0.25, radius=3.0,
                    max_points=50, voxel_size=0.0, augment=False)
    share = sum(int(ds[i].y[0] == 0) for i in range(200)) / 200
    assert 0.15 < share < 0.35
    assert ds.class_counts()[:2].tolist() == [500, 500]


def test_point_dropout_thins_each_crop_within_its_bounds():
    # PointNet++'s random input dropout: theta ~ U(0, p) per crop, floor(theta M)
    # of the crop's M points dropped; the crop is drawn before the thinning, so a
    # thinned crop's labels are a sub-multiset of the same item's unthinned crop
    kw = dict(num_samples=60, radius=10.0, max_points=400, voxel_size=0.0, seed=5)
    full = LidarCrops([_scene()], **kw)
    thin = LidarCrops([_scene()], point_dropout=0.875, **kw)
    kept = []
    for i in range(60):
        a, b = full[i], thin[i]
        m = a.pos.size(0)
        assert b.y.numel() == b.pos.size(0)
        assert m - int(0.875 * m) <= b.pos.size(0) <= m
        assert (torch.bincount(b.y, minlength=2) <= torch.bincount(a.y, minlength=2)).all()
        kept.append(b.pos.size(0) / m)
    # E[kept share] = 1 - p / 2 = 0.5625; 60 crops: sd of the mean 0.875 / sqrt(12 * 60)
    assert abs(float(np.mean(kept)) - 0.5625) < 4 * 0.875 / (12 * 60) ** 0.5
    assert "point_dropout=0.875" in repr(thin) and "point_dropout" not in repr(full)


def test_crops_refuse_bad_arguments():
    with pytest.raises(ValueError, match="at least one scan"):
        LidarCrops([])
    with pytest.raises(ValueError, match="real_fraction"):
        LidarCrops([_scene()], real_fraction=1.5)
    with pytest.raises(ValueError, match="per-point labels"):
        LidarCrops([Data(pos=torch.rand(5, 3))])
    with pytest.raises(ValueError, match="point_dropout"):
        LidarCrops([_scene()], point_dropout=1.0)


def test_class_weights():
    w = class_weights(torch.tensor([100, 0, 25, 400]))
    assert w[1] == 0
    assert torch.allclose(w[[0, 2, 3]], torch.tensor([0.1, 0.2, 0.05]) / (0.35 / 3))
