import copy

import pytest
import torch

from pointsam import ops
from pointsam.nn import (
    GlobalPooledAttention,
    LocalAttention,
    LocalGlobalAttention,
    record_attention,
)


@pytest.fixture
def cloud():
    g = torch.Generator().manual_seed(0)
    pos, x = torch.randn(30, 3, generator=g), torch.randn(30, 8, generator=g)
    return x, pos, torch.tensor([0] * 12 + [1] * 18)


def make_global(**kw):
    kw.setdefault("chunk_size", 5)
    return GlobalPooledAttention(8, 16, num_heads=4, num_global=6, **kw).eval()


def ref_global(m, x, pos, batch):
    """Per-point loop: FPS centres, nearest-centre means, attention over tokens."""
    out = torch.zeros(x.size(0), m.out_channels, dtype=x.dtype)
    h, d = m.num_heads, m.head_dim
    cidx = ops.fps(pos, batch, num=m.num_global)
    for b in batch.unique():
        pts = torch.nonzero(batch == b).flatten()
        cs = cidx[batch[cidx] == b]
        assign = [int(torch.argmin(((pos[cs] - pos[i]) ** 2).sum(-1))) for i in pts]
        toks = []
        for t in range(len(cs)):
            members = [int(pts[j]) for j, a in enumerate(assign) if a == t]
            toks.append(x[members].mean(0))
        for i in pts:
            q = m.lin_q(x[i]).view(h, d)
            logit, vals = [], []
            for t, c in enumerate(cs):
                k = m.lin_k(toks[t]).view(h, d)
                logit.append((q * k).sum(-1) / d ** 0.5 + m.pos_nn(pos[i] - pos[c]))
                vals.append(m.lin_v(toks[t]).view(h, d))
            a = torch.stack(logit).softmax(0)  # [M_b, H]
            out[i] = m.proj((a.unsqueeze(-1) * torch.stack(vals)).sum(0).flatten())
    return out


def test_global_shape_repr_and_weights(cloud):
    x, pos, batch = cloud
    m = make_global()
    out, attn = m(x, pos, batch, return_attention=True)
    assert out.shape == (30, 16) and attn["attn"].shape == (30, 6, 4)
    assert torch.allclose(attn["attn"].sum(1), torch.ones(30, 4), atol=1e-5)
    assert "num_global=6" in repr(m)
    small = GlobalPooledAttention(8, 16, num_heads=4, num_global=15)
    _, a = small(x, pos, batch, return_attention=True)
    assert a["attn"].shape == (30, 15, 4)  # cloud 0 has only 12 points
    assert (a["attn"][:12, 12:] == 0).all()  # masked columns are zero
    assert a["centres"].shape == (12 + 15, 3)


def test_global_equals_reference(cloud):
    x, pos, batch = (t.double() if t.is_floating_point() else t for t in cloud)
    m = make_global().double()
    ref = ref_global(m, x, pos, batch)
    with torch.no_grad():
        for fused in (True, False):
            m.fused = fused
            assert torch.allclose(m(x, pos, batch), ref, atol=1e-10)


def test_global_fused_equals_plain_gradients(cloud):
    x, pos, batch = cloud
    m = make_global().train()
    res = []
    for fused in (True, False):
        m.fused = fused
        xx = x.clone().requires_grad_(True)
        out = m(xx, pos, batch)
        res.append(torch.autograd.grad(out.sin().sum(), [xx, *m.parameters()]))
    for a, b in zip(*res):
        assert torch.allclose(a, b, atol=1e-5)
    for p in m.parameters():
        assert p.grad is None  # autograd.grad leaves .grad alone
    m(x, pos, batch).square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_global_permutation_isolation_translation(cloud):
    x, pos, batch = cloud
    m = make_global()
    out = m(x, pos, batch)
    perm = torch.cat([torch.randperm(12), 12 + torch.randperm(18)])
    assert torch.allclose(m(x[perm], pos[perm], batch), out[perm], atol=1e-5)
    assert torch.allclose(m(x[:12], pos[:12]), out[:12], atol=1e-5)
    x2, pos2 = x.clone(), pos.clone()
    x2[12:] = -x2[12:]
    pos2[12:] += 1.0
    assert torch.allclose(m(x2, pos2, batch)[:12], out[:12], atol=1e-6)
    assert torch.allclose(m(x, pos + 7.0, batch), out, atol=1e-4)


def test_global_never_builds_n_by_n(cloud):
    x, pos, batch = cloud
    big_x, big_pos = x.repeat(20, 1), pos.repeat(20, 1) + torch.randn(600, 3) * 0.01
    m = make_global()
    shapes = []

    def pack(t):
        shapes.append(t.shape)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m.train()(big_x.requires_grad_(True), big_pos)
    assert shapes and all(600 * 600 > s.numel() for s in shapes)
    assert max(s.numel() for s in shapes) <= 600 * 16


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(cloud, dtype):
    x, pos, batch = cloud
    for m32 in (make_global(), LocalGlobalAttention(8, 16, num_heads=4, k=6,
                                                    num_global=6).eval()):
        m = copy.deepcopy(m32).to(dtype)
        with torch.no_grad():
            out = m(x.to(dtype), pos.to(dtype), batch)
            ref = m32(x, pos, batch)
        assert out.dtype == dtype and torch.isfinite(out).all()
        assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max() + 0.02


@pytest.mark.parametrize("fusion", ["laff", "linear"])
def test_local_global(cloud, fusion):
    x, pos, batch = cloud
    m = LocalGlobalAttention(8, 16, num_heads=4, k=6, num_global=6,
                             fusion=fusion).eval()
    out, attn = m(x, pos, batch, return_attention=True)
    assert out.shape == (30, 16)
    assert attn["local"].shape == (30, 6, 4) and attn["global"].shape == (30, 6, 4)
    assert ("fusion" in attn) == (fusion == "laff")
    if fusion == "laff":
        assert attn["fusion"].shape == (30, 4, 2)
        ref = m.fuse([m.local(x, pos, batch), m.glob(x, pos, batch)])
    else:
        ref = m.fuse(torch.cat([m.local(x, pos, batch), m.glob(x, pos, batch)], -1))
    assert torch.allclose(out, ref, atol=1e-6)
    assert f"fusion='{fusion}'" in repr(m)
    perm = torch.cat([torch.randperm(12), 12 + torch.randperm(18)])
    assert torch.allclose(m(x[perm], pos[perm], batch), out[perm], atol=1e-5)
    assert torch.allclose(m(x[12:], pos[12:]), out[12:], atol=1e-5)
    assert torch.allclose(m(x, pos - 2.0, batch), out, atol=1e-4)
    m.train()(x, pos, batch).square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_local_global_small_clouds_and_record():
    g = torch.Generator().manual_seed(3)
    x, pos = torch.randn(7, 8, generator=g), torch.randn(7, 3, generator=g)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1])  # both clouds smaller than k, M
    m = LocalGlobalAttention(8, 16, num_heads=4, k=6, num_global=6).eval()
    model = torch.nn.Sequential()
    model.add_module("lg", m)
    with record_attention(model) as rec:
        out = model[0](x, pos, batch)
    assert torch.isfinite(out).all()
    assert set(rec) == {"lg", "lg.local", "lg.glob", "lg.fuse"}
    assert rec["lg"]["global"].shape == (7, 4, 4)
    assert (rec["lg"]["global"][:3, 3:] == 0).all()
    assert torch.allclose(out[:3], m(x[:3], pos[:3]), atol=1e-5)


def test_local_global_uses_given_neighbourhood(cloud):
    x, pos, batch = cloud
    m = LocalGlobalAttention(8, 16, num_heads=4, k=6, num_global=6, dilation=2)
    idx, mask = ops.knn(pos, 6, batch, dilation=2)
    assert torch.allclose(m(x, pos, batch), m(x, pos, batch, idx, mask))
    assert isinstance(m.local, LocalAttention) and m.local.dilation == 2


def test_bad_inputs(cloud):
    x, pos, batch = cloud
    with pytest.raises(ValueError, match="x has 7 channels"):
        make_global()(x[:, :7], pos, batch)
    with pytest.raises(ValueError, match="batch has"):
        make_global()(x, pos, batch[:-1])
    with pytest.raises(ValueError, match="num_global"):
        GlobalPooledAttention(8, num_global=0)
    with pytest.raises(ValueError, match="fusion"):
        LocalGlobalAttention(8, fusion="concat")
    with pytest.raises(ValueError, match="sorted"):
        LocalGlobalAttention(8, 8, k=4, num_global=4)(x, pos, batch.flip(0))


def test_recorded_weights_of_the_chunked_path_equal_one_block():
    """The fused path runs blocks of points also while its weights are
    recorded (the viewer's memory): outputs and weights equal one block's."""
    from pointsam.nn import GlobalPooledAttention

    g = torch.Generator().manual_seed(0)
    x, pos = torch.randn(300, 16, generator=g), torch.randn(300, 3, generator=g)
    batch = torch.tensor([0] * 120 + [1] * 180)
    whole = GlobalPooledAttention(16, 16, num_heads=4, num_global=24,
                                  chunk_size=4096).eval()
    chunked = GlobalPooledAttention(16, 16, num_heads=4, num_global=24,
                                    chunk_size=32).eval()
    chunked.load_state_dict(whole.state_dict())
    with torch.no_grad():
        o1, a1 = whole(x, pos, batch, return_attention=True)
        o2, a2 = chunked(x, pos, batch, return_attention=True)
    assert torch.allclose(o1, o2, atol=1e-5)
    assert a1["attn"].shape == a2["attn"].shape == (300, 24, 4)
    assert torch.allclose(a1["attn"], a2["attn"], atol=1e-6)
