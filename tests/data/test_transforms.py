"""Transforms keep per-point fields aligned, are seeded, and do the promised maths."""

import math

import pytest
import torch
from torch_geometric.data import Data

from pointsam.data import (
    Compose,
    CylinderCrop,
    FixedPoints,
    Jitter,
    NormalizeScale,
    PointDropout,
    RandomRotate,
    RandomScale,
    RandomShift,
    SphereCrop,
    VoxelSubsample,
    collate,
)


def _cloud(n=200):
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(n, 3, generator=g) * 3 + 5
    nrm = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1)
    return Data(
        pos=pos,
        x=torch.cat([nrm, pos], 1),
        y=torch.arange(n),
        category=torch.tensor([4]),
    )


SUBSETS = [
    FixedPoints(50, seed=0),
    FixedPoints(50, method="fps"),
    FixedPoints(300, seed=0),
    PointDropout(0.5, seed=0),
    VoxelSubsample(1.0),
    SphereCrop(3.0, seed=0),
    SphereCrop(max_points=30, seed=1),
    CylinderCrop(2.0, center="centroid"),
    CylinderCrop(max_points=40, seed=2),
]


@pytest.mark.parametrize("t", SUBSETS, ids=repr)
def test_subsets_keep_fields_aligned(t):
    d0 = _cloud()
    d = t(_cloud())
    n = d.pos.size(0)
    assert 0 < n and d.x.shape == (n, 6) and d.y.shape == (n,)
    assert torch.equal(d.pos, d0.pos[d.y])  # y was the original index
    assert torch.equal(d.x, d0.x[d.y])
    assert d.category.tolist() == [4]


def test_fixed_points_sizes_and_fps():
    assert FixedPoints(300, seed=0)(_cloud()).pos.shape == (300, 3)
    assert FixedPoints(300, replace=False, seed=0)(_cloud()).pos.shape == (200, 3)
    d = FixedPoints(50, method="fps")(_cloud())
    assert d.y.unique().numel() == 50
    from pointsam.ops import fps

    assert sorted(d.y.tolist()) == sorted(fps(_cloud().pos, num=50).tolist())


def test_crops_respect_radius():
    d = SphereCrop(3.0, center="centroid")(_cloud())
    c = _cloud().pos.mean(0)
    assert ((d.pos - c).norm(dim=1) <= 3.0).all()
    full = _cloud()
    inside = ((full.pos - c).norm(dim=1) <= 3.0).sum()
    assert d.pos.size(0) == int(inside)
    d = CylinderCrop(2.0, center="origin")(_cloud())
    assert (d.pos[:, :2].norm(dim=1) <= 2.0).all()
    d = VoxelSubsample(1.0)(_cloud())
    vox = torch.floor((d.pos - _cloud().pos.min(0).values) / 1.0)
    assert torch.unique(vox, dim=0).size(0) == d.pos.size(0)


def test_normalize_scale_unit_sphere():
    d = NormalizeScale()(_cloud())
    assert torch.allclose(d.pos.mean(0), torch.zeros(3), atol=1e-5)
    assert math.isclose(float(d.pos.norm(dim=1).max()), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize("axis", ["z", "so3"])
def test_rotation_rotates_normals_and_keeps_distances(axis):
    d0 = _cloud()
    d = RandomRotate(axis, normals="x", seed=0)(_cloud())
    dist = lambda p: (p[:, None] - p[None]).norm(dim=-1)  # [N, N], exact
    assert torch.allclose(dist(d.pos), dist(d0.pos), atol=1e-4)
    r = torch.linalg.lstsq(d0.pos, d.pos).solution.T  # [3, 3]
    assert torch.allclose(d.x[:, :3], d0.x[:, :3] @ r.T, atol=1e-4)
    assert torch.equal(d.x[:, 3:], d0.x[:, 3:])  # other columns untouched
    if axis == "z":
        assert torch.allclose(d.pos[:, 2], d0.pos[:, 2])


def test_anisotropic_scale_keeps_normals_perpendicular():
    # normals of the plane x + y + z = 0 stay perpendicular to its scaled points
    g = torch.Generator().manual_seed(1)
    uv = torch.randn(50, 2, generator=g)
    pos = torch.stack([uv[:, 0], uv[:, 1], -uv.sum(1)], 1)
    n = torch.full((50, 3), 3**-0.5)
    d = RandomScale(0.5, 2.0, normals="x", seed=0)(Data(pos=pos, x=n))
    tangents = d.pos[1:] - d.pos[:1]
    assert torch.allclose(tangents @ d.x[0], torch.zeros(49), atol=1e-4)
    assert torch.allclose(d.x.norm(dim=1), torch.ones(50))


def test_seeded_and_composable():
    t = lambda: Compose(
        [
            RandomRotate("so3", seed=5),
            RandomScale(seed=5),
            RandomShift(0.5, seed=5),
            Jitter(0.01, seed=5),
            PointDropout(0.3, seed=5),
        ]
    )
    a, b = t()(_cloud()), t()(_cloud())
    assert torch.equal(a.pos, b.pos) and torch.equal(a.y, b.y)
    tt = t()  # one generator, successive draws differ
    assert not torch.equal(tt(_cloud()).pos[:5], tt(_cloud()).pos[:5])
    j = Jitter(0.1, clip=0.05, seed=0)(_cloud())
    assert ((j.pos - _cloud().pos).abs() <= 0.05 + 1e-6).all()


def test_classification_label_not_indexed():
    d = Data(pos=torch.randn(10, 3), y=torch.tensor([3]))
    d = FixedPoints(4, seed=0)(d)
    assert d.y.tolist() == [3] and d.pos.shape == (4, 3)


def test_collate_builds_batch_and_ptr():
    b = collate([_cloud(5), _cloud(7)])
    assert b.ptr.tolist() == [0, 5, 12] and b.batch.tolist() == [0] * 5 + [1] * 7
    assert b.category.tolist() == [4, 4]
    with pytest.raises(ValueError):
        collate([])
