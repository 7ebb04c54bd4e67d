import pytest
import torch

from pointsam import ops
from pointsam.nn import MultiHeadPointAttention


@pytest.fixture
def cloud():
    g = torch.Generator().manual_seed(0)
    pos, x = torch.randn(30, 3, generator=g), torch.randn(30, 16, generator=g)
    return x, pos, torch.tensor([0] * 12 + [1] * 18)


def make(**kw):
    return MultiHeadPointAttention(16, num_heads=4, **kw).eval()


def reference(m, x, pos, batch):
    """Per cloud, per point: softmax over the cloud's points of q_i . k_j / sqrt(D)."""
    h, d = m.num_heads, m.head_dim
    out = torch.empty(x.size(0), m.channels)
    for b in range(int(batch.max()) + 1):
        sel = batch == b
        xb, pb = x[sel], pos[sel]
        q, k, v = m.qkv(xb).split(m.channels, dim=-1)
        if m.pos_nn is not None:
            e = m.pos_nn(pb - pb.mean(0))
            wq, wk = m.qkv.weight[:16], m.qkv.weight[16:32]
            q, k = q + e @ wq.T, k + e @ wk.T
        rows = []
        for i in range(xb.size(0)):
            heads = []
            for hh in range(h):
                sl = slice(hh * d, (hh + 1) * d)
                a = torch.softmax(k[:, sl] @ q[i, sl] / d ** 0.5, dim=0)
                heads.append(a @ v[:, sl])
            rows.append(torch.cat(heads))
        out[sel] = m.proj(torch.stack(rows))
    return out


@pytest.mark.parametrize("pos_encoding", [True, False])
def test_equals_reference_and_plain_path(cloud, pos_encoding):
    x, pos, batch = cloud
    m = make(pos_encoding=pos_encoding)
    fast = m(x, pos, batch)
    m.fused = False
    plain = m(x, pos, batch)
    assert fast.shape == (30, 16)
    assert torch.allclose(fast, plain, atol=1e-5)
    assert torch.allclose(plain, reference(m, x, pos, batch), atol=1e-5)


def test_weights(cloud):
    x, pos, batch = cloud
    m = make()
    out, attn = m(x, pos, batch, return_attention=True)
    a = attn["attn"]
    assert a.shape == (2, 4, 18, 18)
    assert torch.allclose(out, m(x, pos, batch), atol=1e-5)
    assert torch.allclose(a[0, :, :12].sum(-1), torch.ones(4, 12), atol=1e-5)
    assert torch.allclose(a[1].sum(-1), torch.ones(4, 18), atol=1e-5)
    assert bool((a[0, :, 12:] == 0).all()) and bool((a[0, :, :, 12:] == 0).all())


def test_repr_and_gradients(cloud):
    x, pos, batch = cloud
    m = make().train()
    r = repr(m)
    assert "num_heads=4" in r and "max_points=8192" in r
    x = x.clone().requires_grad_()
    m(x, pos, batch).square().sum().backward()
    assert bool(x.grad.abs().sum() > 0)
    for n, p in m.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), n


@pytest.mark.parametrize("fused", [True, False])
def test_permutation_equivariance(cloud, fused):
    x, pos, batch = cloud
    m = make(fused=fused)
    perm = torch.cat([torch.randperm(12), 12 + torch.randperm(18)])
    assert torch.allclose(m(x[perm], pos[perm], batch), m(x, pos, batch)[perm],
                          atol=1e-5)


def test_batch_independence(cloud):
    x, pos, batch = cloud
    m = make()
    out = m(x, pos, batch)
    assert torch.allclose(out[:12], m(x[:12], pos[:12]), atol=1e-5)
    assert torch.allclose(out[12:], m(x[12:], pos[12:]), atol=1e-5)
    x2, pos2 = x.clone(), pos.clone()
    x2[12:], pos2[12:] = torch.randn(18, 16), torch.randn(18, 3)
    out2 = m(x2, pos2, batch)
    assert torch.allclose(out2[:12], out[:12], atol=1e-6)
    assert not torch.allclose(out2[12:], out[12:])


def test_empty_cloud_in_batch_gap(cloud):
    x, pos, _ = cloud
    m = make()
    batch = torch.tensor([0] * 12 + [2] * 18)  # cloud 1 empty
    out = m(x, pos, batch)
    assert bool(torch.isfinite(out).all())
    assert torch.allclose(out[:12], m(x[:12], pos[:12]), atol=1e-5)


def test_translation_invariance(cloud):
    x, pos, batch = cloud
    m = make()
    shift = torch.where(batch.unsqueeze(1) == 0, 4.0, -7.0)  # per-cloud shift
    assert torch.allclose(m(x, pos + shift, batch), m(x, pos, batch), atol=1e-4)


def test_single_point_cloud():
    m = make()
    out = m(torch.randn(1, 16), torch.randn(1, 3))
    assert out.shape == (1, 16) and bool(torch.isfinite(out).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("fused", [True, False])
def test_low_precision_finite(cloud, dtype, fused):
    x, pos, batch = cloud
    m = make(fused=fused)
    ref = m(x, pos, batch)
    out = m.to(dtype)(x.to(dtype), pos.to(dtype), batch)
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    assert torch.allclose(out.float(), ref, atol=0.1, rtol=0.05)


def test_float16_centroid_of_a_far_cloud():
    # 8000 points near (12, 12, 2): the float16 coordinate sum overflows 65504
    g = torch.Generator().manual_seed(5)
    pos = torch.rand(8000, 3, generator=g) * 4 + torch.tensor([10.0, 10.0, 0.0])
    x = torch.randn(8000, 16, generator=g)
    m = MultiHeadPointAttention(16, num_heads=4)
    ref = m(x, pos)
    out = m.half()(x.half(), pos.half())
    assert bool(torch.isfinite(out).all())
    assert torch.allclose(out.float(), ref, atol=0.1, rtol=0.05)


def test_too_many_points_fails_before_allocation(monkeypatch):
    m = MultiHeadPointAttention(8, num_heads=2, max_points=16)
    calls = []
    monkeypatch.setattr(ops, "to_dense", lambda *a, **k: calls.append(1))
    batch = torch.tensor([0] * 10 + [1] * 17)
    with pytest.raises(ValueError, match="cloud 1 has 17 points.*max_points=16"):
        m(torch.randn(27, 8), torch.randn(27, 3), batch)
    assert not calls
    monkeypatch.undo()
    assert m(torch.randn(16, 8), torch.randn(16, 3)).shape == (16, 8)


def test_bad_inputs(cloud):
    x, pos, batch = cloud
    m = make()
    with pytest.raises(ValueError, match="channels"):
        m(torch.randn(30, 8), pos, batch)
    with pytest.raises(ValueError, match="rows"):
        m(x[:5], pos, batch)
    with pytest.raises(ValueError, match="batch"):
        m(x, pos, batch[:5])
    with pytest.raises(ValueError, match="int64"):
        m(x, pos, batch.int())
    with pytest.raises(ValueError, match="features x"):
        m(None, pos, batch)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadPointAttention(10, num_heads=4)
    with pytest.raises(ValueError, match="max_points"):
        MultiHeadPointAttention(8, max_points=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_device_fused_matches_plain(cloud, device, dtype):
    x, pos, batch = cloud
    m = make()
    ref = m(x, pos, batch)
    m = m.to(device, dtype)
    args = (x.to(device, dtype), pos.to(device, dtype), batch.to(device))
    fast = m(*args)
    m.fused = False
    plain = m(*args)
    tol = 1e-4 if dtype == torch.float32 else 0.05
    assert bool(torch.isfinite(fast).all())
    assert torch.allclose(fast.float(), plain.float(), atol=tol, rtol=tol)
    assert torch.allclose(fast.float().cpu(), ref, atol=20 * tol, rtol=tol)
