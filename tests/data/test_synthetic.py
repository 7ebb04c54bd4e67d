"""Synthetic sets: deterministic by seed, promised classes and sizes."""

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from pointsam.data import LIDAR_CLASSES, SyntheticLidar, SyntheticParts, SyntheticShapes


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a.keys())


def test_shapes_classes_sizes_determinism():
    ds = SyntheticShapes(num_samples=24, num_points=200, seed=3)
    assert ds.num_classes == len(ds.classes) >= 10
    assert sorted(ds[i].y.item() for i in range(24)) == sorted(list(range(12)) * 2)
    d = ds[7]
    assert d.pos.shape == (200, 3) and d.x.shape == (200, 3) and d.y.shape == (1,)
    assert torch.allclose(d.x.norm(dim=1), torch.ones(200), atol=1e-5)
    assert _equal(d, SyntheticShapes(num_samples=24, num_points=200, seed=3)[7])
    assert not torch.equal(
        d.pos, SyntheticShapes(num_samples=24, num_points=200, seed=4)[7].pos
    )
    assert not torch.equal(
        d.pos,
        SyntheticShapes(num_samples=24, num_points=200, seed=3, split="test")[7].pos,
    )


@pytest.mark.parametrize(
    "name",
    [
        "sphere",
        "cube",
        "cylinder",
        "cone",
        "tetrahedron",
        "octahedron",
        "pyramid",
        "plate",
    ],
)
def test_shape_normals_point_outward(name):
    ds = SyntheticShapes(num_samples=12, num_points=300, rotation="so3", noise=0.0)
    d = ds[ds.classes.index(name)]
    out = d.pos - d.pos.mean(0)
    assert float(((out * d.x).sum(1) > 0).float().mean()) > 0.97


def test_parts_categories_and_labels():
    ds = SyntheticParts(num_samples=10, num_points=300, seed=1)
    assert ds.num_categories >= 4 and ds.num_parts == 13
    for i in range(len(ds)):
        d = ds[i]
        cat = ds.categories[d.category.item()]
        assert d.pos.shape == (300, 3) and d.y.shape == (300,) and d.x.shape == (300, 3)
        assert set(d.y.tolist()) <= set(ds.seg_classes[cat])
        assert len(set(d.y.tolist())) >= 2  # every part gets points
        assert float(d.pos.norm(dim=1).max()) < 1.05
    assert _equal(ds[4], SyntheticParts(num_samples=10, num_points=300, seed=1)[4])
    assert sorted(p for ps in ds.seg_classes.values() for p in ps) == list(range(13))


def test_lidar_small_scan():
    ds = SyntheticLidar(num_samples=3, beams=16, azimuth_steps=256, seed=0)
    d = ds[1]
    n = d.pos.size(0)
    assert 0.5 * 16 * 256 < n <= 16 * 256
    assert d.x.shape == (n, 1) and d.y.shape == (n,)
    assert 0 <= float(d.x.min()) and float(d.x.max()) <= 1
    assert float(d.pos.norm(dim=1).max()) < ds.max_range + 0.1
    assert set(d.y.tolist()) <= set(range(len(LIDAR_CLASSES)))
    assert {1, 2} <= set(d.y.tolist())  # road and sidewalk around the sensor
    assert _equal(d, SyntheticLidar(num_samples=3, beams=16, azimuth_steps=256)[1])
    road = d.pos[d.y == 1]
    assert torch.allclose(road[:, 2], torch.full_like(road[:, 2], -1.73), atol=0.06)


def test_lidar_full_size_is_about_100k():
    ds = SyntheticLidar(num_samples=1)
    assert ds.ray_directions().shape == (115200, 3)
    d = ds[0]
    assert 80_000 < d.pos.size(0) <= 115_200
    assert set(d.y.unique().tolist()) >= {0, 1, 2, 3}


def test_lidar_sequence_static_world_aligns():
    ds = SyntheticLidar(
        num_samples=1, beams=32, azimuth_steps=512, num_scans=3, ego_speed=10.0
    )
    d = ds[0]
    assert d.poses.shape == (1, 3, 4, 4) and set(d.frame.tolist()) == {0, 1, 2}
    assert torch.allclose(d.poses[0, 2, 0, 3], torch.tensor(-2.0))
    # buildings are static: every frame's building points lie near frame 0's
    from pointsam.ops import knn

    b = d.y == 3
    ref = d.pos[b & (d.frame == 0)]
    old = d.pos[b & (d.frame == 2)]
    idx, _ = knn(ref, 1, query=old)
    dist = (old - ref[idx[:, 0]]).norm(dim=1)
    assert float(dist.median()) < 0.3
    assert d.moving.dtype == torch.bool


def test_pyg_loader_batches_synthetic():
    loader = DataLoader(SyntheticParts(num_samples=4, num_points=64), batch_size=2)
    b = next(iter(loader))
    assert b.pos.shape == (128, 3) and b.batch.tolist() == [0] * 64 + [1] * 64
    assert b.category.shape == (2,) and b.y.shape == (128,)


def test_bad_sizes_rejected():
    with pytest.raises(ValueError, match="num_points"):
        SyntheticShapes(num_points=0)
    with pytest.raises(ValueError, match="beams"):
        SyntheticLidar(beams=0)
    with pytest.raises(ValueError, match="split"):
        SyntheticParts(split="dev")
    with pytest.raises(IndexError):
        SyntheticShapes(num_samples=2)[2]
    assert np.isfinite(
        SyntheticShapes(num_samples=1, num_points=8)[0].pos.numpy()
    ).all()


def test_lidar_moving_classes_from_a_short_sequence():
    from pointsam.data import MOVING_CLASSES

    kw = dict(num_samples=2, beams=12, azimuth_steps=240, num_scans=2, seed=3)
    plain = SyntheticLidar(**kw)[1]
    ds = SyntheticLidar(**kw, moving_classes=True)
    d = ds[1]
    assert ds.num_classes == 10 and ds.classes[8:] == MOVING_CLASSES
    assert torch.equal(d.pos, plain.pos) and torch.equal(d.frame, plain.frame)
    assert bool((d.y == 8).any()) and bool((d.y == 9).any())  # both occur here
    # moving car / person exactly where a car / person point is on a moving object
    assert torch.equal(d.y == 8, d.moving & (plain.y == 4))
    assert torch.equal(d.y == 9, d.moving & (plain.y == 7))
    back = d.y.clone()
    back[back == 8], back[back == 9] = 4, 7
    assert torch.equal(back, plain.y)  # the other labels are untouched
    assert not bool((d.moving & (d.y < 8)).any())  # only cars and people move


def test_lidar_crop_radius_in_the_newest_frame():
    ds = SyntheticLidar(num_samples=1, beams=12, azimuth_steps=240, num_scans=2,
                        crop_radius=15.0)
    d = ds[0]
    assert float(d.pos[:, :2].norm(dim=1).max()) <= 15.0 + 1e-4
    assert {0, 1} == set(d.frame.tolist())
    with pytest.raises(ValueError, match="crop_radius"):
        SyntheticLidar(crop_radius=0.0)
    with pytest.raises(ValueError, match="moving_classes"):
        SyntheticLidar(moving_classes=1)


def test_lidar_stopped_cars_stand_still_in_the_lanes():
    kw = dict(num_samples=4, beams=12, azimuth_steps=240, num_scans=2,
              moving_classes=True)
    base = SyntheticLidar(**kw)
    same = SyntheticLidar(**kw, stopped_cars=0.0)
    assert torch.equal(base[0].y, same[0].y)  # the default scenes do not change
    none_move = SyntheticLidar(**kw, stopped_cars=1.0)
    for i in range(4):
        d = none_move[i]
        assert not bool((d.y == 8).any())  # every car stands still
        assert bool((d.y == 4).any())
    with pytest.raises(ValueError, match="stopped_cars"):
        SyntheticLidar(stopped_cars=1.5)
