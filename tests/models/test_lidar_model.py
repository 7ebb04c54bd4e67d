"""Height above the local ground and the frame-independent LiDAR segmenter."""

import numpy as np
import pytest
import torch

from pointsam.models import create_model, height_above_ground, local_shape


def _street(seed=0, n=4000):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 60 - 30
    z = 0.03 * xy[:, 0] - 0.02 * xy[:, 1] - 1.7  # a tilted road, sensor frame
    ground = torch.cat([xy, z[:, None]], 1)
    wall = torch.rand(300, 3, generator=g) * torch.tensor([0.1, 10.0, 6.0])
    wall[:, 0] += 12.0
    wall[:, 2] += 0.03 * 12.0 - 0.02 * wall[:, 1] - 1.7  # standing on the road
    return torch.cat([ground, wall]), wall[:, 2] - (0.36 - 0.02 * wall[:, 1] - 1.7)


def test_height_above_ground_of_a_tilted_road_and_a_wall():
    pos, wall_h = _street()
    h = height_above_ground(pos)
    # the 3 x 3 cell minimum reaches up to ~3 cells (12 m) downhill: on a 3.6%
    # slope the road reads at most ~0.43 m high, and never below the road
    assert h[:4000].min() > -0.05 and h[:4000].max() < 0.45
    assert h[:4000].median() < 0.3
    assert (h[4000:] - wall_h).abs().max() < 0.45  # wall points: their true height


def test_height_is_translation_invariant_and_per_cloud():
    pos, _ = _street()
    h = height_above_ground(pos)
    shifted = height_above_ground(pos + torch.tensor([100.0, -157.0, 3.0]))
    assert torch.allclose(h, shifted, atol=1e-4)
    other, _ = _street(seed=1)
    batch = torch.cat([torch.zeros(len(pos)), torch.ones(len(other))]).long()
    both = height_above_ground(torch.cat([pos, other + 50]), batch)
    assert torch.allclose(both[: len(pos)], h, atol=1e-5)
    assert torch.allclose(both[len(pos):], height_above_ground(other), atol=1e-5)


def test_height_batched_equals_cloud_by_cloud():
    # all clouds in one pass (packed cell keys) = each cloud alone, exactly,
    # including clouds whose cells abut in packed key space and an empty cloud
    parts = [_street(seed=s, n=n)[0] for s, n in ((2, 900), (3, 50), (4, 1200))]
    parts[1] = parts[1] * 0.01 + torch.tensor([5e5, -3e5, 2.0])  # tiny, far away
    pos = torch.cat(parts)
    batch = torch.cat([torch.full((len(p),), i) for i, p in zip((0, 1, 3), parts)])
    both = height_above_ground(pos, batch)
    alone = torch.cat([height_above_ground(p) for p in parts])
    assert torch.equal(both, alone)


def test_height_memory_is_linear():
    # 2M points spread over 1 km: an N x N or a dense-grid step would not fit
    pos = torch.rand(2_000_000, 3) * torch.tensor([1000.0, 1000.0, 1.0])
    pos[0, :2] = 1e6  # an outlier 1000 km away: cells are hashed, not a dense grid
    h = height_above_ground(pos)
    assert h.shape == (2_000_000,) and torch.isfinite(h).all()


def test_height_bad_input():
    with pytest.raises(ValueError, match="cell > 0"):
        height_above_ground(torch.rand(5, 3), cell=0.0)
    with pytest.raises(ValueError, match="NaN"):
        height_above_ground(torch.full((5, 3), float("nan")))


def test_lidarseg_model_is_frame_independent_and_ignores_intensity():
    torch.manual_seed(0)
    m = create_model("pointnet2_lite_lidarseg", num_classes=5).eval()
    pos, _ = _street(n=1500)
    out = m(pos=pos)
    assert out.shape == (1800, 5)
    world = m(pos=pos + torch.tensor([3.0, -100.0, -4.0]))  # a world frame
    assert torch.allclose(out, world, atol=1e-3)
    assert torch.equal(m(pos=pos, x=torch.rand(1800, 1)), out)  # x is not read


def test_lidarseg_model_trains():
    torch.manual_seed(0)
    m = create_model("pointnet2_lite_lidarseg", num_classes=3, attention="axial")
    pos, _ = _street(n=800)
    m(pos=pos).sum().backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def _shape_reference(pos, radius, k):
    """Slow reference: per point, numpy's eigh of its <= k nearest within radius."""
    p = pos.double().numpy()
    out = np.zeros((len(p), 4))
    for i in range(len(p)):
        d = np.linalg.norm(p - p[i], axis=1)
        near = np.argsort(d, kind="stable")[:k]
        near = near[d[near] <= radius]
        if len(near) < 3:
            continue
        q = p[near] - p[near].mean(0)
        lam, vec = np.linalg.eigh(q.T @ q / len(near))
        lam = np.clip(lam, 0, None)
        l3, l2, l1 = lam
        if l1 <= 0:
            continue
        out[i] = [(l1 - l2) / l1, (l2 - l3) / l1, l3 / l1, abs(vec[2, 0])]
    return out


def test_local_shape_equals_a_slow_reference():
    pos, _ = _street(n=600)
    pos = pos[torch.randperm(len(pos), generator=torch.Generator().manual_seed(0))[:400]]
    f = local_shape(pos, radius=3.0, k=12).double().numpy()
    ref = _shape_reference(pos, 3.0, 12)
    assert (ref.any(1) == f.any(1)).all()  # the same points have < 3 neighbours
    # the ratios are float32 at the end: 1e-4 on values in [0, 1]; the normal's
    # sign is free, so |n_z| is compared
    np.testing.assert_allclose(f, ref, atol=1e-4)


def test_local_shape_is_frame_free_and_per_cloud():
    pos, _ = _street(n=1500)
    f = local_shape(pos, radius=3.0, k=16)  # the road holds ~0.4 points per m^2
    c, s = np.cos(0.7), np.sin(0.7)
    rot = torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float32)
    moved = pos @ rot.T + torch.tensor([100.0, -157.0, 3.0])
    assert torch.allclose(local_shape(moved, radius=3.0, k=16), f, atol=2e-3)  # rotation about z, shift
    other, _ = _street(seed=1, n=900)
    batch = torch.cat([torch.zeros(len(pos)), torch.ones(len(other))]).long()
    both = local_shape(torch.cat([pos, other]), batch, radius=3.0, k=16)  # overlapping clouds
    assert torch.allclose(both[: len(pos)], f, atol=1e-5)
    assert torch.allclose(both[len(pos):], local_shape(other, radius=3.0, k=16), atol=1e-5)
    # the wall (x = 12, vertical) reads vertical, the road horizontal
    assert f[1500:, 3].median() < 0.2 and f[:1500, 3].median() > 0.95


def test_local_shape_bad_input_and_isolated_points():
    with pytest.raises(ValueError, match="NaN"):
        local_shape(torch.full((5, 3), float("nan")))
    far = torch.tensor([[0.0, 0, 0], [10.0, 0, 0], [20.0, 0, 0]])
    assert torch.equal(local_shape(far), torch.zeros(3, 4))  # < 3 neighbours: zeros
    with pytest.raises(ValueError, match="empty"):
        local_shape(torch.zeros(0, 3))


def test_lidarseg_model_with_shape_features_is_frame_independent():
    torch.manual_seed(0)
    m = create_model("pointnet2_lite_lidarseg", num_classes=5, shape_radius=0.5).eval()
    pos, _ = _street(n=1500)
    out = m(pos=pos)
    assert out.shape == (1800, 5)
    assert torch.allclose(out, m(pos=pos + torch.tensor([3.0, -100.0, -4.0])), atol=1e-3)
    plan = m.plan(pos)
    assert plan["height"].shape == (1800, 5)
    torch.testing.assert_close(m.network(None, pos, plan), out, atol=1e-4, rtol=1e-4)
