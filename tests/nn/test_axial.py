import copy

import pytest
import torch

from pointsam import ops
from pointsam.nn import AxialAttention, record_attention
from pointsam.nn.axial import axis_scales


@pytest.fixture
def cloud():
    g = torch.Generator().manual_seed(0)
    pos, x = torch.randn(30, 3, generator=g), torch.randn(30, 8, generator=g)
    return x, pos, torch.tensor([0] * 12 + [1] * 18)


def make(**kw):
    return AxialAttention(8, 16, num_heads=4, k=5, **kw).eval()


def ref_tubes(pos, batch, k, stretch):
    """Brute-force anisotropic kNN sets per axis (sorted squared distances)."""
    out = []
    for a in range(3):
        s = torch.full((3,), stretch, dtype=pos.dtype)
        s[a] = 1.0
        rows = []
        for i in range(pos.size(0)):
            cand = torch.nonzero(batch == batch[i]).flatten()
            d = (((pos[cand] - pos[i]) * s) ** 2).sum(-1)
            rows.append(d.sort().values[:k])
        out.append(rows)
    return out


def test_shape_repr_and_weights(cloud):
    x, pos, batch = cloud
    m = make()
    out, attn = m(x, pos, batch, return_attention=True)
    assert out.shape == (30, 16)
    assert attn["axis"].shape == (30, 3) and attn["laff"].shape == (30, 4, 3)
    assert all(attn[a].shape == (30, 5, 4) for a in "xyz")
    assert torch.allclose(attn["axis"].sum(-1), torch.ones(30), atol=1e-5)
    assert "stretch=4.0" in repr(m) and "k=5" in repr(m)


def test_equals_reference_composition(cloud):
    """Each branch runs on the anisotropic tube of its axis, fused by LAFF."""
    x, pos, batch = (t.double() if t.is_floating_point() else t for t in cloud)
    m = make(stretch=3.0).double()
    tubes = ref_tubes(pos, batch, 5, 3.0)
    ys = []
    for a, (scale, branch) in enumerate(zip(axis_scales(3.0), m.branches)):
        idx, mask = ops.knn(pos, 5, batch, scale=scale)
        s = torch.tensor(scale, dtype=pos.dtype)
        d = (((pos.unsqueeze(1) - pos[idx]) * s) ** 2).sum(-1)  # [N, K]
        for i in range(30):
            assert torch.allclose(d[i].sort().values, tubes[a][i])
        ys.append(branch(x, pos, batch, idx, mask))
    assert torch.allclose(m(x, pos, batch), m.fuse(ys), atol=1e-12)


def test_tubes_follow_their_axis():
    # points on a line along x and a line along z: the x-tube of a point on the
    # x-line stays on it
    t = torch.linspace(0, 1, 10)
    line_x = torch.stack([t, torch.zeros(10), torch.zeros(10)], 1)
    line_z = torch.stack([torch.zeros(10) + 0.05, torch.zeros(10), t * 0.3], 1)
    pos = torch.cat([line_x, line_z])
    idx, _ = ops.knn(pos, 4, scale=axis_scales(10.0)[0])
    assert (idx[5] < 10).all()
    idx_z, _ = ops.knn(pos, 4, scale=axis_scales(10.0)[2])
    assert (idx_z[15] >= 10).all()


def test_gradients_permutation_isolation_translation(cloud):
    x, pos, batch = cloud
    m = make()
    out = m(x, pos, batch)
    perm = torch.cat([torch.randperm(12), 12 + torch.randperm(18)])
    assert torch.allclose(m(x[perm], pos[perm], batch), out[perm], atol=1e-5)
    assert torch.allclose(m(x[:12], pos[:12]), out[:12], atol=1e-5)
    x2 = x.clone()
    x2[12:] += 1.0
    assert torch.allclose(m(x2, pos, batch)[:12], out[:12], atol=1e-6)
    assert torch.allclose(m(x, pos + 5.0, batch), out, atol=1e-4)
    m.train()(x, pos, batch).square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_small_clouds_half_precision_and_record(cloud):
    x, pos, batch = cloud
    small = torch.tensor([0, 0, 1, 1, 1, 1, 1, 1])  # 2 points < k
    m = make()
    out = m(x[:8], pos[:8], small)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[:2], m(x[:2], pos[:2]), atol=1e-5)
    for dtype in (torch.float16, torch.bfloat16):
        mh = copy.deepcopy(m).to(dtype)
        with torch.no_grad():
            assert torch.isfinite(mh(x.to(dtype), pos.to(dtype), batch)).all()
    with record_attention(m) as rec:
        m(x, pos, batch)
    assert rec[""]["axis"].shape == (30, 3)
    assert {"branches.0", "branches.1", "branches.2", "fuse"} <= set(rec)


def test_bad_inputs(cloud):
    x, pos, batch = cloud
    m = make()
    idx, mask = ops.knn(pos, 5, batch)
    with pytest.raises(ValueError, match="own anisotropic"):
        m(x, pos, batch, idx, mask)
    with pytest.raises(ValueError, match="stretch"):
        AxialAttention(8, stretch=0.5)
    with pytest.raises(ValueError, match="x has 3 channels"):
        m(x[:, :3], pos, batch)
