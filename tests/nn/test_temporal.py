import pytest
import torch

from pointsam.nn import TemporalAttention


@pytest.fixture
def frames():
    """Current frame (2 clouds: 10 + 14 points) and 2 past frames; cloud 0 of
    past frame 1 has only 3 points (< k)."""
    g = torch.Generator().manual_seed(0)

    def frame(n0, n1):
        n = n0 + n1
        return (torch.randn(n, 16, generator=g), torch.randn(n, 3, generator=g),
                torch.tensor([0] * n0 + [1] * n1))

    return frame(10, 14), [frame(12, 9), frame(3, 11)]


def make(**kw):
    return TemporalAttention(16, num_heads=4, k=4, **kw).eval()


def call(m, cur, past, **kw):
    x, pos, batch = cur
    return m(x, pos, batch, past_x=[p[0] for p in past],
             past_pos=[p[1] for p in past], past_batch=[p[2] for p in past], **kw)


def reference(m, cur, past):
    """Point by point: brute-force k nearest per past frame and cloud, one softmax
    over all T*k candidates."""
    x, pos, batch = cur
    h, d, c = m.num_heads, m.head_dim, m.channels
    e = m.time_encoding(len(past), x.device, x.dtype)
    out = []
    for i in range(x.size(0)):
        keys, vals = [], []
        for tau, (px, pp, pb) in enumerate(past):
            same = (pb == batch[i]).nonzero().flatten()
            nb = same[(pp[same] - pos[i]).norm(dim=1).argsort()[: m.k]]
            for j in nb.tolist():
                kv = m.kv(px[j])
                extra = m.pos_nn(pp[j] - pos[i]) + e[tau]
                keys.append(kv[:c] + extra)
                vals.append(kv[c:] + extra)
        kk, vv = torch.stack(keys), torch.stack(vals)
        q = m.q(x[i])
        heads = []
        for hh in range(h):
            sl = slice(hh * d, (hh + 1) * d)
            a = torch.softmax(kk[:, sl] @ q[sl] / d ** 0.5, dim=0)
            heads.append(a @ vv[:, sl])
        out.append(torch.cat(heads))
    return m.proj(torch.stack(out))


@pytest.mark.parametrize("num_frames", [None, 3])
def test_equals_reference(frames, num_frames):
    cur, past = frames
    m = make(num_frames=num_frames)
    out, attn = call(m, cur, past, return_attention=True)
    assert out.shape == (24, 16)
    assert torch.allclose(out, reference(m, cur, past), atol=1e-5)
    a = attn["attn"]
    assert a.shape == (24, 8, 4)
    assert torch.allclose(a.sum(1), torch.ones(24, 4), atol=1e-5)
    # cloud 0 has 3 points in past frame 1: its 4th candidate there is masked
    assert bool((a[:10, 7] == 0).all()) and bool((a[:10, 6] > 0).all())
    assert torch.equal(call(m, cur, past), out)


@pytest.mark.parametrize("num_frames", [None, 2])
def test_chunked_equals_plain_with_gradients(frames, num_frames):
    cur, past = frames
    res = []
    for fused in (True, False):
        torch.manual_seed(0)
        m = make(num_frames=num_frames, fused=fused, chunk=7).train()
        x = cur[0].clone().requires_grad_()
        px = past[0][0].clone().requires_grad_()
        out, attn = call(m, (x, *cur[1:]), [(px, *past[0][1:]), past[1]],
                         return_attention=True)
        out.square().sum().backward()
        grads = {n: p.grad for n, p in m.named_parameters()}
        res.append((out, attn["attn"], x.grad, px.grad, grads))
    (o1, a1, gx1, gp1, g1), (o2, a2, gx2, gp2, g2) = res
    assert torch.allclose(o1, o2, atol=1e-5) and torch.allclose(a1, a2, atol=1e-6)
    assert torch.allclose(gx1, gx2, atol=1e-4) and torch.allclose(gp1, gp2, atol=1e-4)
    for n in g1:
        assert torch.allclose(g1[n], g2[n], atol=1e-4), n


def test_repr_and_gradients(frames):
    cur, past = frames
    for m in (make(), make(num_frames=2)):
        assert "k=4" in repr(m) and "num_heads=4" in repr(m) and "fused" in repr(m)
        m.train()
        call(m, cur, past).square().sum().backward()
        for n, p in m.named_parameters():
            assert p.grad is not None and bool(p.grad.abs().sum() > 0), n


def test_past_features_get_gradients(frames):
    cur, past = frames
    px = past[0][0].clone().requires_grad_()
    past = [(px, past[0][1], past[0][2]), past[1]]
    call(make(), cur, past).sum().backward()
    assert bool(px.grad.abs().sum() > 0)


def test_permutation_equivariance(frames):
    cur, past = frames
    m = make()
    out = call(m, cur, past)
    x, pos, batch = cur
    perm = torch.cat([torch.randperm(10), 10 + torch.randperm(14)])
    # shuffle past points too (within each cloud): the output must not change
    px, pp, pb = past[0]
    pperm = torch.cat([torch.randperm(12), 12 + torch.randperm(9)])
    past2 = [(px[pperm], pp[pperm], pb), past[1]]
    out2 = call(m, (x[perm], pos[perm], batch), past2)
    assert torch.allclose(out2, out[perm], atol=1e-5)


def test_cloud_isolation(frames):
    cur, past = frames
    m = make()
    out = call(m, cur, past)
    x, pos, batch = cur
    alone = m(x[:10], pos[:10], past_x=[past[0][0][:12], past[1][0][:3]],
              past_pos=[past[0][1][:12], past[1][1][:3]])
    assert torch.allclose(out[:10], alone, atol=1e-5)
    # changing cloud 1 in a past frame never changes cloud 0
    px, pp, pb = past[0]
    px2, pp2 = px.clone(), pp.clone()
    px2[12:], pp2[12:] = torch.randn(9, 16), torch.randn(9, 3)
    out2 = call(m, cur, [(px2, pp2, pb), past[1]])
    assert torch.equal(out2[:10], out[:10])
    assert not torch.allclose(out2[10:], out[10:])


def test_translation_invariance(frames):
    cur, past = frames
    m = make()
    s = torch.tensor([5.0, -3.0, 2.0])
    moved = [(px, pp + s, pb) for px, pp, pb in past]
    out = call(m, (cur[0], cur[1] + s, cur[2]), moved)
    assert torch.allclose(out, call(m, cur, past), atol=1e-4)


def test_time_encoding_distinguishes_frames(frames):
    cur, past = frames
    m = make()
    same = [past[0], past[0]]
    # identical frames: only the time encoding differs between the two halves
    _, attn = call(m, cur, same, return_attention=True)
    assert not torch.allclose(attn["attn"][:, :4], attn["attn"][:, 4:])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("pos_float32", [False, True])
def test_low_precision_finite(frames, dtype, pos_float32):
    cur, past = frames
    m = make()
    ref = call(m, cur, past)
    m = m.to(dtype)
    pdt = torch.float32 if pos_float32 else dtype
    cast = [(px.to(dtype), pp.to(pdt), pb) for px, pp, pb in past]
    out = call(m, (cur[0].to(dtype), cur[1].to(pdt), cur[2]), cast)
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    assert torch.allclose(out.float(), ref, atol=0.1, rtol=0.05)


def test_bad_inputs(frames):
    cur, past = frames
    x, pos, batch = cur
    m = make(num_frames=1)
    px = [p[0] for p in past]
    pp = [p[1] for p in past]
    pb = [p[2] for p in past]
    with pytest.raises(ValueError, match="num_frames=1"):
        m(x, pos, batch, past_x=px, past_pos=pp, past_batch=pb)
    m = make()
    with pytest.raises(ValueError, match="at least one past frame"):
        m(x, pos, batch, past_x=[], past_pos=[], past_batch=[])
    with pytest.raises(ValueError, match="past_pos has 1"):
        m(x, pos, batch, past_x=px, past_pos=pp[:1], past_batch=pb)
    with pytest.raises(ValueError, match="past_batch"):
        m(x, pos, batch, past_x=px, past_pos=pp)
    with pytest.raises(ValueError, match="list of tensors"):
        m(x, pos, batch, past_x=px[0], past_pos=pp, past_batch=pb)
    with pytest.raises(ValueError, match="past frame 1: x has 8 channels"):
        m(x, pos, batch, past_x=[px[0], torch.randn(14, 8)], past_pos=pp,
          past_batch=pb)
    with pytest.raises(ValueError, match="past frame 0.*rows"):
        m(x, pos, batch, past_x=[px[0][:5], px[1]], past_pos=pp, past_batch=pb)
    with pytest.raises(ValueError, match="past frame 0.*no points"):
        m(x, pos, batch, past_x=[px[0][:12], px[1]], past_pos=[pp[0][:12], pp[1]],
          past_batch=[pb[0][:12], pb[1]])
    with pytest.raises(ValueError, match="channels"):
        m(torch.randn(24, 8), pos, batch, past_x=px, past_pos=pp, past_batch=pb)
    with pytest.raises(ValueError, match=r"past_pos\[1\] is torch.float16 but pos"):
        m(x, pos, batch, past_x=px, past_pos=[pp[0], pp[1].half()], past_batch=pb)


def test_device_matches_cpu(frames, device):
    cur, past = frames
    m = make()
    ref = call(m, cur, past)
    m = m.to(device)
    mv = [tuple(t.to(device) for t in p) for p in past]
    out = call(m, tuple(t.to(device) for t in cur), mv)
    assert out.device.type == device.type
    assert torch.allclose(out.cpu(), ref, atol=1e-4)
