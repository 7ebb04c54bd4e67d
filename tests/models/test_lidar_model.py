"""Height above the local ground and the frame-independent LiDAR segmenter."""

import pytest
import torch

from pointsam.models import create_model, height_above_ground


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
