import pytest
import torch

from pointsam.nn import CrossModalAttention


@pytest.fixture
def data():
    """Two samples: 10 + 14 points, 5 + 7 tokens of 12 channels (with positions)."""
    g = torch.Generator().manual_seed(0)
    x, pos = torch.randn(24, 16, generator=g), torch.randn(24, 3, generator=g)
    batch = torch.tensor([0] * 10 + [1] * 14)
    tokens, tpos = torch.randn(12, 12, generator=g), torch.randn(12, 3, generator=g)
    tbatch = torch.tensor([0] * 5 + [1] * 7)
    return x, pos, batch, tokens, tpos, tbatch


def make(**kw):
    return CrossModalAttention(16, 12, num_heads=4, **kw).eval()


def call(m, d, **kw):
    x, pos, batch, tokens, tpos, tbatch = d
    return m(x, pos, batch, tokens=tokens, token_batch=tbatch, **kw)


def reference(m, d, allowed=None):
    """Point by point: softmax over the allowed tokens of the point's own sample."""
    x, pos, batch, tokens, tpos, tbatch = d
    h, hd, c = m.num_heads, m.head_dim, m.channels
    kv = m.kv(tokens)
    out = []
    for i in range(x.size(0)):
        sel = tbatch == batch[i]
        if allowed is not None:
            sel = sel & allowed[i]
        q = m.q(x[i])
        if not bool(sel.any()):
            out.append(torch.zeros(c))
            continue
        k, v = kv[sel, :c], kv[sel, c:]
        heads = []
        for hh in range(h):
            sl = slice(hh * hd, (hh + 1) * hd)
            a = torch.softmax(k[:, sl] @ q[sl] / hd ** 0.5, dim=0)
            heads.append(a @ v[:, sl])
        out.append(torch.cat(heads))
    return m.proj(torch.stack(out))


def test_equals_reference(data):
    m = make()
    out, attn = call(m, data, return_attention=True)
    assert out.shape == (24, 16)
    assert torch.allclose(out, reference(m, data), atol=1e-5)
    a = attn["attn"]
    assert a.shape == (24, 7, 4)
    assert torch.allclose(a.sum(1), torch.ones(24, 4), atol=1e-5)
    assert bool((a[:10, 5:] == 0).all())  # sample 0 has only 5 tokens
    assert torch.allclose(call(m, data), out, atol=1e-5)  # fused path


@pytest.mark.parametrize("local", ["none", "radius", "mask"])
def test_fused_equals_plain(data, local):
    g = torch.Generator().manual_seed(2)
    mask = torch.rand(24, 12, generator=g) > 0.6
    mask[[0, 20]] = False  # blind points
    kw = {"none": {}, "radius": {"token_pos": data[4]}, "mask": {"mask": mask}}[local]
    m = make(radius=1.0)
    x = data[0].clone().requires_grad_()
    fast = m(x, *data[1:3], tokens=data[3], token_batch=data[5], **kw)
    fast.square().sum().backward()
    gx, x.grad = x.grad, None
    m.fused = False
    plain = m(x, *data[1:3], tokens=data[3], token_batch=data[5], **kw)
    plain.square().sum().backward()
    assert torch.allclose(fast, plain, atol=1e-5)
    assert torch.allclose(gx, x.grad, atol=1e-5)


def test_radius_mask_equals_reference(data):
    x, pos, batch, tokens, tpos, tbatch = data
    m = make(radius=1.5)
    out, attn = call(m, data, token_pos=tpos, return_attention=True)
    allowed = (pos.unsqueeze(1) - tpos.unsqueeze(0)).norm(dim=-1) <= 1.5  # [N, T]
    assert bool((~allowed).any()) and bool(allowed.any())
    assert torch.allclose(out, reference(m, data, allowed), atol=1e-5)
    assert "radius=1.5" in repr(m) and "fused=True" in repr(m)


def test_given_mask_equals_reference_and_blind_points(data):
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(24, 12, generator=g) > 0.5
    mask[3] = False  # point 3 sees no token
    m = make()
    out, attn = call(m, data, mask=mask, return_attention=True)
    assert torch.allclose(out, reference(m, data, mask), atol=1e-5)
    assert bool((attn["attn"][3] == 0).all())
    assert torch.allclose(out[3], m.proj.bias, atol=1e-6)
    # finite gradients even through a blind point
    x = data[0].clone().requires_grad_()
    m(x, *data[1:3], tokens=data[3], token_batch=data[5], mask=mask).sum().backward()
    assert bool(torch.isfinite(x.grad).all())


def test_never_attends_across_samples(data):
    x, pos, batch, tokens, tpos, tbatch = data
    m = make()
    out = call(m, data)
    tokens2 = tokens.clone()
    tokens2[5:] = torch.randn(7, 12)  # change sample 1's tokens only
    out2 = m(x, pos, batch, tokens=tokens2, token_batch=tbatch)
    assert torch.equal(out2[:10], out[:10])
    assert not torch.allclose(out2[10:], out[10:])
    alone = m(x[:10], pos[:10], tokens=tokens[:5])
    assert torch.allclose(out[:10], alone, atol=1e-5)


def test_sample_without_tokens(data):
    x, pos, batch, tokens, tpos, tbatch = data
    for fused in (True, False):
        m = make(fused=fused)
        out = m(x, pos, batch, tokens=tokens[5:], token_batch=tbatch[5:])
        assert torch.allclose(out[:10], m.proj.bias.expand(10, 16), atol=1e-6)
        assert torch.allclose(out[10:], call(m, data)[10:], atol=1e-5)


def test_permutation_equivariance(data):
    x, pos, batch, tokens, tpos, tbatch = data
    m = make(radius=1.5)
    out = call(m, data, token_pos=tpos)
    perm = torch.cat([torch.randperm(10), 10 + torch.randperm(14)])
    tperm = torch.cat([torch.randperm(5), 5 + torch.randperm(7)])
    out2 = m(x[perm], pos[perm], batch, tokens=tokens[tperm], token_batch=tbatch,
             token_pos=tpos[tperm])
    assert torch.allclose(out2, out[perm], atol=1e-5)


def test_translation_invariance(data):
    x, pos, batch, tokens, tpos, tbatch = data
    m = make(radius=1.5)
    s = torch.tensor([2.0, 3.0, -1.0])
    out = m(x, pos + s, batch, tokens=tokens, token_batch=tbatch, token_pos=tpos + s)
    assert torch.allclose(out, call(m, data, token_pos=tpos), atol=1e-5)


def test_gradients(data):
    m = make().train()
    tokens = data[3].clone().requires_grad_()
    x, pos, batch = data[:3]
    m(x, pos, batch, tokens=tokens, token_batch=data[5]).square().sum().backward()
    assert bool(tokens.grad.abs().sum() > 0)
    for n, p in m.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), n


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_finite(data, dtype):
    m = make()
    ref = call(m, data)
    x, pos, batch, tokens, tpos, tbatch = data
    out = m.to(dtype)(x.to(dtype), pos.to(dtype), batch, tokens=tokens.to(dtype),
                      token_batch=tbatch)
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    assert torch.allclose(out.float(), ref, atol=0.1, rtol=0.05)


def test_bad_inputs(data):
    x, pos, batch, tokens, tpos, tbatch = data
    m = make()
    with pytest.raises(ValueError, match="tokens has 8 channels"):
        m(x, pos, batch, tokens=torch.randn(12, 8), token_batch=tbatch)
    with pytest.raises(ValueError, match=r"tokens must have shape \[T, C_other\]"):
        m(x, pos, batch, tokens=torch.randn(12), token_batch=tbatch)
    with pytest.raises(ValueError, match="token_batch"):
        m(x, pos, batch, tokens=tokens)
    with pytest.raises(ValueError, match="token_batch has 5 entries"):
        m(x, pos, batch, tokens=tokens, token_batch=tbatch[:5])
    with pytest.raises(ValueError, match="sorted"):
        m(x, pos, batch, tokens=tokens, token_batch=tbatch.flip(0))
    with pytest.raises(ValueError, match=r"mask must have shape \[N, T\]"):
        m(x, pos, batch, tokens=tokens, token_batch=tbatch,
          mask=torch.ones(24, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be bool"):
        m(x, pos, batch, tokens=tokens, token_batch=tbatch, mask=torch.ones(24, 12))
    with pytest.raises(ValueError, match="token_pos has 4 rows"):
        m(x, pos, batch, tokens=tokens, token_batch=tbatch, token_pos=tpos[:4])
    with pytest.raises(ValueError, match="x has 8 channels"):
        m(torch.randn(24, 8), pos, batch, tokens=tokens, token_batch=tbatch)
    with pytest.raises(ValueError, match="empty"):
        m(x, pos, batch, tokens=tokens[:0], token_batch=tbatch[:0])
    with pytest.raises(ValueError, match="radius"):
        CrossModalAttention(16, 12, radius=-1.0)


def test_device_matches_cpu(data, device):
    m = make(radius=1.5)
    ref = call(m, data, token_pos=data[4])
    d = tuple(t.to(device) for t in data)
    out = call(m.to(device), d, token_pos=d[4])
    assert out.device.type == device.type
    assert torch.allclose(out.cpu(), ref, atol=1e-4)
