import pytest
import torch

from pointsam.nn import LAFF, LAFFMultiLevel, record_attention


def ref_laff(m, xs):
    """Per-point, per-head loop of the DESIGN definition."""
    n = xs[0].size(0)
    out = torch.zeros(n, m.out_channels, dtype=xs[0].dtype)
    d = m.head_dim
    for i in range(n):
        t = [p(f[i]) for p, f in zip(m.projs, xs)]
        for h in range(m.num_heads):
            sl = slice(h * d, (h + 1) * d)
            s = torch.stack([m.v[h] @ torch.tanh(ti[sl]) for ti in t])
            a = s.softmax(0)
            out[i, sl] = sum(a[j] * t[j][sl] for j in range(len(t)))
    return out


@pytest.fixture
def feats():
    g = torch.Generator().manual_seed(0)
    return [torch.randn(12, 6, generator=g), torch.randn(12, 10, generator=g),
            torch.randn(12, 4, generator=g)]


def test_shape_repr_and_weights(feats):
    m = LAFF([6, 10, 4], 16, num_heads=4)
    out, attn = m(feats, return_attention=True)
    assert out.shape == (12, 16) and attn["a"].shape == (12, 4, 3)
    assert torch.allclose(attn["a"].sum(-1), torch.ones(12, 4))
    assert "[6, 10, 4], 16, num_heads=4" in repr(m)
    assert m([f.unsqueeze(0) for f in feats]).shape == (1, 12, 16)  # [*, C]


def test_equals_reference_and_is_convex(feats):
    m = LAFF([6, 10, 4], 16, num_heads=4).double()
    xs = [f.double() for f in feats]
    out = m(xs)
    assert torch.allclose(out, ref_laff(m, xs), atol=1e-12)
    t = torch.stack([p(f) for p, f in zip(m.projs, xs)])  # [m, N, C]
    assert (out <= t.max(0).values + 1e-12).all()
    assert (out >= t.min(0).values - 1e-12).all()


def test_gradients_and_permutation(feats):
    m = LAFF([6, 10, 4], 16, num_heads=4)
    m(feats).square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    perm = torch.randperm(12)
    assert torch.allclose(m([f[perm] for f in feats]), m(feats)[perm], atol=1e-6)


def test_half_precision(feats):
    for dtype in (torch.float16, torch.bfloat16):
        m = LAFF([6, 10, 4], 16, num_heads=4).to(dtype)
        assert torch.isfinite(m([f.to(dtype) for f in feats])).all()


def test_bad_inputs(feats):
    m = LAFF([6, 10, 4], 16, num_heads=4)
    with pytest.raises(ValueError, match="list of 3 tensors, got 2"):
        m(feats[:2])
    with pytest.raises(ValueError, match="input 1 must have 10 channels"):
        m([feats[0], feats[0], feats[2]])
    with pytest.raises(ValueError, match="leading shape"):
        m([feats[0], feats[1][:5], feats[2]])
    with pytest.raises(ValueError, match="divisible"):
        LAFF([4], 10, num_heads=4)


def test_multilevel(feats):
    m = LAFFMultiLevel([6, 10, 4], 16, num_heads=2).double()
    xs = [f.double() for f in feats]
    out, attn = m(xs, return_attention=True)
    assert out.shape == (12, 16) and attn["a"].shape == (12, 2, 2, 2)
    y = m.stem(xs[0])
    for f, lf in zip(xs[1:], m.fuse):
        y = ref_laff(lf, [y, f])
    assert torch.allclose(out, y, atol=1e-12)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    with record_attention(m) as rec:
        m(xs)
    assert set(rec) == {"", "fuse.0", "fuse.1"}
    assert torch.allclose(rec[""]["a"][:, 1], rec["fuse.1"]["a"])
    with pytest.raises(ValueError, match="at least 2 levels"):
        LAFFMultiLevel([4])
    with pytest.raises(ValueError, match="list of 3"):
        m(xs[:2])
