import pytest
import torch
from torch import nn

from pointsam import ops
from pointsam.nn import (
    CBAM,
    ChannelGate,
    CrossModalAttention,
    LocalAttention,
    MultiBranchAttention,
    PointGate,
    TemporalAttention,
)


@pytest.fixture
def cloud():
    g = torch.Generator().manual_seed(0)
    pos, x = torch.randn(30, 3, generator=g), torch.randn(30, 16, generator=g)
    return x, pos, torch.tensor([0] * 12 + [1] * 18)


def make(fusion="laff", **kw):
    branches = [ChannelGate(16, reduction=4), PointGate(16, k=6),
                LocalAttention(16, 16, num_heads=4, k=6)]
    return MultiBranchAttention(branches, fusion=fusion, num_heads=4, **kw).eval()


@pytest.mark.parametrize("fusion", ["laff", "linear"])
def test_equals_fused_branches(cloud, fusion):
    x, pos, batch = cloud
    m = make(fusion, out_channels=24)
    out, attn = m(x, pos, batch, return_attention=True)
    feats = [br(x, pos, batch) for br in m.branches]
    ref = m.fuse(feats) if fusion == "laff" else m.fuse(torch.cat(feats, -1))
    assert out.shape == (30, 24)
    assert torch.allclose(out, ref, atol=1e-6)
    assert torch.allclose(m(x, pos, batch), out, atol=1e-6)
    keys = set(attn)
    assert {"branches.0.channel", "branches.1.point"} <= keys
    assert any(k.startswith("branches.2.") for k in keys)
    if fusion == "laff":
        assert attn["a"].shape == (30, 4, 3)
        assert torch.allclose(attn["a"].sum(-1), torch.ones(30, 4), atol=1e-5)
        _, la = m.fuse(feats, return_attention=True)
        assert torch.allclose(attn["a"], la["a"], atol=1e-6)
    else:
        assert "a" not in attn
    r = repr(m)
    assert "3 branches [16, 16, 16] -> 24" in r and f"fusion='{fusion}'" in r


def test_shared_neighbour_table(cloud):
    x, pos, batch = cloud
    m = make(k=4)
    idx, mask = ops.knn(pos, 4, batch)
    feats = [m.branches[0](x, pos, batch)] + [
        br(x, pos, batch, idx, mask) for br in m.branches[1:]]
    assert torch.allclose(m(x, pos, batch), m.fuse(feats), atol=1e-6)
    # a given table goes to every branch
    own = torch.arange(30).unsqueeze(1).expand(30, 2).contiguous()
    feats = [m.branches[0](x, pos, batch)] + [
        br(x, pos, batch, own) for br in m.branches[1:]]
    assert torch.allclose(m(x, pos, batch, own), m.fuse(feats), atol=1e-6)


def test_gradients(cloud):
    x, pos, batch = cloud
    for fusion in ("laff", "linear"):
        m = make(fusion).train()
        m(x, pos, batch).square().sum().backward()
        for n, p in m.named_parameters():
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), (fusion, n)


def test_permutation_isolation_translation(cloud):
    x, pos, batch = cloud
    m = make()
    out = m(x, pos, batch)
    perm = torch.cat([torch.randperm(12), 12 + torch.randperm(18)])
    assert torch.allclose(m(x[perm], pos[perm], batch), out[perm], atol=1e-5)
    assert torch.allclose(m(x[:12], pos[:12]), out[:12], atol=1e-5)
    x2 = x.clone()
    x2[12:] = torch.randn(18, 16)
    assert torch.allclose(m(x2, pos, batch)[:12], out[:12], atol=1e-6)
    assert torch.allclose(m(x, pos - 3.0, batch), out, atol=1e-5)


def test_cloud_smaller_than_k():
    m = make(k=16)
    out = m(torch.randn(5, 16), torch.randn(5, 3))
    assert out.shape == (5, 16) and bool(torch.isfinite(out).all())


def test_kwargs_go_to_the_branches_that_take_them():
    temporal = TemporalAttention(16, num_heads=4, k=3)
    cross = CrossModalAttention(16, 8, num_heads=4)
    m = MultiBranchAttention([CBAM(16, k=4), temporal, cross], num_heads=4).eval()
    x, pos = torch.randn(10, 16), torch.randn(10, 3)
    kw = dict(past_x=[torch.randn(7, 16)], past_pos=[torch.randn(7, 3)],
              tokens=torch.randn(4, 8))
    out, attn = m(x, pos, return_attention=True, **kw)
    feats = [m.branches[0](x, pos),
             temporal(x, pos, past_x=kw["past_x"], past_pos=kw["past_pos"]),
             cross(x, pos, tokens=kw["tokens"])]
    assert torch.allclose(out, m.fuse(feats), atol=1e-6)
    assert attn["branches.1.attn"].shape == (10, 3, 4)
    assert attn["branches.2.attn"].shape == (10, 4, 4)
    with pytest.raises(TypeError, match="no branch accepts.*'colour'"):
        m(x, pos, colour=1, **kw)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_finite(cloud, dtype):
    x, pos, batch = cloud
    m = make().to(dtype)
    out = m(x.to(dtype), pos.to(dtype), batch)
    assert out.dtype == dtype and bool(torch.isfinite(out).all())


def test_bad_inputs(cloud):
    x, pos, batch = cloud
    with pytest.raises(ValueError, match="non-empty"):
        MultiBranchAttention([])
    with pytest.raises(ValueError, match="fusion"):
        MultiBranchAttention([CBAM(16)], fusion="concat")
    with pytest.raises(ValueError, match="branch_channels="):
        MultiBranchAttention([nn.Identity()])
    with pytest.raises(ValueError, match="different input channels"):
        MultiBranchAttention([CBAM(16), CBAM(32)], out_channels=16)
    with pytest.raises(ValueError, match="divisible"):
        MultiBranchAttention([CBAM(16)], out_channels=10, num_heads=4)
    m = make()
    with pytest.raises(ValueError, match="x has 8 channels"):
        m(torch.randn(30, 8), pos, batch)
    with pytest.raises(ValueError, match="batch"):
        m(x, pos, batch[:3])
    with pytest.raises(ValueError, match="different clouds"):
        m(x, pos, batch, torch.zeros(30, 2, dtype=torch.long))


def test_device_matches_cpu(cloud, device):
    x, pos, batch = cloud
    m = make(k=4)
    ref = m(x, pos, batch)
    out = m.to(device)(x.to(device), pos.to(device), batch.to(device))
    assert torch.allclose(out.cpu(), ref, atol=1e-4)
