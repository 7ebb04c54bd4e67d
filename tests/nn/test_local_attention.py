import copy

import pytest
import torch

from pointsam import ops
from pointsam.nn import LocalAttention, record_attention
from pointsam.nn._chunked import ChunkedNeighbourFunction
from pointsam.nn.local_attention import add_self_loops

MODES = ["scalar", "vector"]


@pytest.fixture
def cloud():
    g = torch.Generator().manual_seed(0)
    pos, x = torch.randn(30, 3, generator=g), torch.randn(30, 8, generator=g)
    return x, pos, torch.tensor([0] * 12 + [1] * 18)


def make(mode, **kw):
    kw.setdefault("chunk_size", 7)  # several blocks on the fused path
    return LocalAttention(8, 16, num_heads=4, k=6, mode=mode, **kw).eval()


# ---------------------------------------------------------------- references
def ref_scalar(m, x, pos, idx, mask):
    """Per-point loop of the DESIGN definition (scalar mode), float64."""
    h, d = m.num_heads, m.head_dim
    out = []
    for i in range(x.size(0)):
        js = idx[i][mask[i]]
        q = m.lin_q(x[i]).view(h, d)
        logits, vals = [], []
        for j in js:
            delta = m.pos_nn(pos[i] - pos[j])
            kj = (m.lin_k(x[j]) + delta).view(h, d)
            logits.append((q * kj).sum(-1) / d ** 0.5)  # [H]
            vals.append((m.lin_v(x[j]) + delta).view(h, d))
        a = torch.stack(logits).softmax(0)  # [K, H]
        o = (a.unsqueeze(-1) * torch.stack(vals)).sum(0).flatten()
        out.append(m.proj(o))
    return torch.stack(out)


def ref_vector(m, x, pos, idx, mask):
    """Per-point loop of PointTransformerConv's definition (self loop once)."""
    out = []
    for i in range(x.size(0)):
        js = [int(j) for j in idx[i][mask[i]] if int(j) != i] + [i]
        logits, vals = [], []
        for j in js:
            delta = m.pos_nn(pos[i] - pos[j])
            logits.append(m.attn_nn(m.lin_dst(x[i]) - m.lin_src(x[j]) + delta))
            vals.append(m.lin(x[j]) + delta)
        a = torch.stack(logits).softmax(0)  # [K', C]
        out.append((a * torch.stack(vals)).sum(0))
    return torch.stack(out)


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("mode", MODES)
def test_shape_and_repr(cloud, mode):
    x, pos, batch = cloud
    m = make(mode)
    assert m(x, pos, batch).shape == (30, 16)
    assert f"mode='{mode}'" in repr(m) and "k=6" in repr(m)
    assert LocalAttention(8, mode=mode, num_heads=2, k=4)(x, pos).shape == (30, 8)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fused", [True, False])
def test_every_parameter_gets_gradient(cloud, mode, fused):
    x, pos, batch = cloud
    m = make(mode, fused=fused).train()
    m(x, pos, batch).square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("mode", MODES)
def test_fused_equals_plain_values_and_gradients(cloud, mode):
    x, pos, batch = cloud
    m = make(mode)
    res = []
    for fused in (True, False):
        m.fused = fused
        xx, pp = x.clone().requires_grad_(True), pos.clone().requires_grad_(True)
        out = m(xx, pp, batch)
        grads = torch.autograd.grad(out.sin().sum(), [xx, pp, *m.parameters()])
        res.append((out, grads))
    assert torch.allclose(res[0][0], res[1][0], atol=1e-6)
    for a, b in zip(res[0][1], res[1][1]):
        assert torch.allclose(a, b, atol=1e-5)


def test_batchnorm_in_pos_nn_trains_like_the_plain_path(cloud):
    # BatchNorm over [n, K, C] needs whole-batch statistics and one running-stat
    # update per step: the fused layer must match fused=False in training
    from pointsam.nn import MLP

    x, pos, batch = cloud
    pos_nn = MLP([3, 16, 16], norm_layer=torch.nn.BatchNorm1d)
    a = LocalAttention(8, 16, k=6, mode="vector", chunk_size=7,
                       pos_nn=pos_nn).train()
    b = copy.deepcopy(a)
    b.fused = False
    outs = []
    for m in (a, b):
        out = m(x, pos, batch)
        out.square().sum().backward()
        outs.append(out)
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    bn_a = [t for t in a.modules() if isinstance(t, torch.nn.BatchNorm1d)][0]
    bn_b = [t for t in b.modules() if isinstance(t, torch.nn.BatchNorm1d)][0]
    assert torch.allclose(bn_a.running_mean, bn_b.running_mean)
    assert int(bn_a.num_batches_tracked) == int(bn_b.num_batches_tracked) == 1
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_float64(mode):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 4, dtype=torch.double, generator=g, requires_grad=True)
    pos = torch.randn(12, 3, dtype=torch.double, generator=g, requires_grad=True)
    batch = torch.tensor([0] * 5 + [1] * 7)
    m = LocalAttention(4, 4, num_heads=2, k=4, mode=mode, chunk_size=5,
                       hidden_channels=4).double()
    idx, mask = ops.knn(pos.detach(), 4, batch)
    assert torch.autograd.gradcheck(lambda a, b: m(a, b, batch, idx, mask), (x, pos),
                                    fast_mode=True)


def test_chunked_function_saves_no_gathered_tensor(cloud):
    x, pos, batch = cloud
    m = make("vector").train()
    saved = []

    def pack(t):
        saved.append(t.shape)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        m(x.requires_grad_(True), pos, batch)
    assert not any(len(s) == 3 for s in saved)  # nothing of shape [N, K, C]
    assert ChunkedNeighbourFunction is not None


@pytest.mark.parametrize("mode", MODES)
def test_equals_per_point_reference(cloud, mode):
    x, pos, batch = (t.double() if t.is_floating_point() else t for t in cloud)
    m = make(mode).double()
    idx, mask = ops.knn(pos, 6, batch)
    ref = (ref_scalar if mode == "scalar" else ref_vector)(m, x, pos, idx, mask)
    with torch.no_grad():
        for fused in (True, False):
            m.fused = fused
            assert torch.allclose(m(x, pos, batch), ref, atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
def test_permutation_equivariance(cloud, mode):
    x, pos, batch = cloud
    m = make(mode)
    perm = torch.cat([torch.randperm(12), 12 + torch.randperm(18)])
    out = m(x, pos, batch)
    assert torch.allclose(m(x[perm], pos[perm], batch), out[perm], atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_per_cloud_isolation(cloud, mode):
    x, pos, batch = cloud
    m = make(mode)
    out = m(x, pos, batch)
    assert torch.allclose(out[:12], m(x[:12], pos[:12]), atol=1e-5)
    assert torch.allclose(out[12:], m(x[12:], pos[12:]), atol=1e-5)
    x2, pos2 = x.clone(), pos.clone()
    x2[12:] += 5.0
    pos2[12:] *= 3.0
    assert torch.allclose(m(x2, pos2, batch)[:12], out[:12], atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_translation_invariance(cloud, mode):
    x, pos, batch = cloud
    m = make(mode)
    assert torch.allclose(m(x, pos + 3.0, batch), m(x, pos, batch), atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_cloud_smaller_than_k(mode):
    g = torch.Generator().manual_seed(2)
    x, pos = torch.randn(9, 8, generator=g), torch.randn(9, 3, generator=g)
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1])  # 3 points < k = 6
    m = make(mode).double()
    out, attn = m(x.double(), pos.double(), batch, return_attention=True)
    assert torch.isfinite(out).all()
    idx, mask = ops.knn(pos.double(), 6, batch)
    ref = (ref_scalar if mode == "scalar" else ref_vector)(
        m, x.double(), pos.double(), idx, mask)
    assert torch.allclose(out, ref, atol=1e-10)
    w = attn["attn"]  # masked neighbours get weight 0
    assert (w[:3, 3:] == 0).all()
    assert torch.allclose(w.sum(1), torch.ones(9, 4).double())
    assert torch.allclose(out[:3], m(x[:3].double(), pos[:3].double()), atol=1e-10)


def _pyg_conv():
    """PyG PointTransformerConv 8 -> 16 with norm-free MLPs (the benchmark's shape)."""
    from torch_geometric.nn import MLP as PygMLP
    from torch_geometric.nn import PointTransformerConv

    return PointTransformerConv(8, 16, pos_nn=PygMLP([3, 32, 16], norm=None,
                                                     plain_last=False),
                                attn_nn=PygMLP([16, 32, 16], norm=None,
                                               plain_last=False))


def test_vector_equals_pyg_point_transformer_conv(cloud):
    pytest.importorskip("torch_geometric")
    from torch_geometric.nn import PointTransformerConv

    x, pos, batch = cloud
    conv = _pyg_conv()
    m = LocalAttention.from_pyg(conv, k=6, chunk_size=7)
    idx, mask = ops.knn(pos, 6, batch)
    tgt = torch.arange(30).unsqueeze(1).expand_as(idx)
    edge_index = torch.stack([idx[mask], tgt[mask]])  # row 0 source j, row 1 target i
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a = conv(xa, pos, edge_index)
    b = m(xb, pos, batch, idx, mask)
    assert torch.allclose(a, b, atol=1e-5)
    a.square().sum().backward()
    b.square().sum().backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-4)
    # a table without self (query != pos neighbours): PyG adds the self loop, we too
    idx2 = torch.roll(idx, 1, dims=1)[:, :5]
    idx2 = torch.where(idx2 == torch.arange(30).unsqueeze(1), idx[:, 5:6], idx2)
    ei2 = torch.stack([idx2.flatten(), torch.arange(30).repeat_interleave(5)])
    assert torch.allclose(conv(x, pos, ei2), m(x, pos, batch, idx2), atol=1e-5)
    conv0 = PointTransformerConv(8, 16)  # default pos_nn, no attn_nn
    assert torch.allclose(conv0(x, pos, edge_index),
                          LocalAttention.from_pyg(conv0)(x, pos, batch, idx, mask),
                          atol=1e-5)


def test_add_self_loops_table():
    idx = torch.tensor([[0, 1], [0, 1], [2, 2]])
    mask = torch.tensor([[True, True], [True, True], [True, False]])
    i2, m2 = add_self_loops(idx, mask)
    assert i2.tolist() == [[0, 0, 1], [1, 0, 1], [2, 2, 2]]
    assert m2.tolist() == [[True, False, True], [True, True, False],
                           [True, False, False]]
    ok = torch.tensor([[0, 1], [1, 0]])
    assert add_self_loops(ok, torch.ones_like(ok, dtype=torch.bool))[0] is ok


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_forward_finite(cloud, mode, dtype):
    x, pos, batch = cloud
    m32 = make(mode)
    m = copy.deepcopy(m32).to(dtype)
    with torch.no_grad():
        out = m(x.to(dtype), pos.to(dtype), batch)
        ref = m32(x, pos, batch)
    assert out.dtype == dtype and torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


@pytest.mark.parametrize("mode", MODES)
def test_return_attention_and_record(cloud, mode):
    x, pos, batch = cloud
    m = make(mode)
    out, attn = m(x, pos, batch, return_attention=True)
    assert attn["attn"].shape == (30, 6, 4) and attn["nbr_idx"].shape == (30, 6)
    assert torch.allclose(attn["attn"].sum(1), torch.ones(30, 4), atol=1e-5)
    assert torch.allclose(out, m(x, pos, batch), atol=1e-6)
    model = torch.nn.Sequential()
    model.add_module("att", m)
    with record_attention(model) as rec:
        m(x, pos, batch)
    assert torch.allclose(rec["att"]["attn"], attn["attn"])


def test_dilation_changes_neighbourhood(cloud):
    x, pos, batch = cloud
    m1 = LocalAttention(8, 16, num_heads=4, k=4).eval()
    m2 = LocalAttention(8, 16, num_heads=4, k=4, dilation=2).eval()
    m2.load_state_dict(m1.state_dict())
    _, a1 = m1(x, pos, batch, return_attention=True)
    _, a2 = m2(x, pos, batch, return_attention=True)
    idx2, _ = ops.knn(pos, 4, batch, dilation=2)
    assert torch.equal(a2["nbr_idx"], idx2) and not torch.equal(a1["nbr_idx"], idx2)


def test_bad_inputs(cloud):
    x, pos, batch = cloud
    m = make("scalar")
    with pytest.raises(ValueError, match="x has 5 channels, expected 8"):
        m(torch.randn(30, 5), pos, batch)
    with pytest.raises(ValueError, match="pos must have shape"):
        m(x, pos[:, :2], batch)
    with pytest.raises(ValueError, match="x has 29 rows"):
        m(x[:29], pos, batch)
    with pytest.raises(ValueError, match="batch has 29 entries"):
        m(x, pos, batch[:29])
    with pytest.raises(ValueError, match="sorted"):
        m(x, pos, batch.flip(0))
    with pytest.raises(ValueError, match="NaN"):
        m(x, pos.clone().fill_(float("nan")), batch)
    idx, mask = ops.knn(pos, 6, batch)
    with pytest.raises(ValueError, match="outside"):
        m(x, pos, batch, idx + 1)
    with pytest.raises(ValueError, match="nbr_idx must have shape"):
        m(x, pos, batch, idx[:10])
    with pytest.raises(ValueError, match="nbr_mask must have the shape"):
        m(x, pos, batch, idx, mask[:, :3])
    with pytest.raises(ValueError, match="different clouds"):
        m(x, pos, batch, torch.zeros_like(idx))
    with pytest.raises(ValueError, match="needs point features x"):
        m(None, pos, batch)
    with pytest.raises(ValueError, match="mode must be"):
        LocalAttention(8, mode="dense")
    with pytest.raises(ValueError, match="divisible"):
        LocalAttention(8, 10, num_heads=4)
    with pytest.raises(ValueError, match="k must be"):
        LocalAttention(8, k=0)


@pytest.mark.parametrize("as_list", [True, False])
def test_chunked_apply_bipartite_gradcheck(as_list):
    """The generic chunked function: src rows != dst rows, masks, both call forms."""
    from pointsam.nn._chunked import chunked_neighbour_apply

    g = torch.Generator().manual_seed(4)
    lin = torch.nn.Linear(3, 3).double()
    dst = torch.randn(7, 3, dtype=torch.double, generator=g, requires_grad=True)
    src = torch.randn(11, 3, dtype=torch.double, generator=g, requires_grad=True)
    idx = torch.randint(0, 11, (7, 4), generator=g)
    mask = torch.rand(7, 4, generator=g) > 0.3
    mask[:, 0] = True

    def kernel(d, s, m, want):
        if as_list:
            d, s = d[0], s[0]
        logits = (lin(s) * d.unsqueeze(1)).sum(-1)  # [n, K]
        a = logits.masked_fill(~m, float("-inf")).softmax(1)  # [n, K]
        return (a.unsqueeze(-1) * torch.tanh(s)).sum(1), a.unsqueeze(-1)

    def run(d, s, fused):
        dd, ss = ([d], [s]) if as_list else (d, s)
        return chunked_neighbour_apply(kernel, dd, ss, idx, mask, [lin], chunk=3,
                                       fused=fused, want=True)

    out, a = run(dst, src, True)
    ref, ra = run(dst, src, False)
    assert torch.allclose(out, ref) and torch.allclose(a, ra)
    assert torch.autograd.gradcheck(lambda d, s: run(d, s, True)[0], (dst, src))
    gp = torch.autograd.grad(run(dst, src, True)[0].sum(), list(lin.parameters()))
    rp = torch.autograd.grad(run(dst, src, False)[0].sum(), list(lin.parameters()))
    assert all(torch.allclose(x, y) for x, y in zip(gp, rp))


# ---------------------------------------------------------------- hand-written vector path
def _nets(name):
    """pos_nn / attn_nn pairs that linear_chain accepts (the fast path)."""
    from torch import nn

    from pointsam.nn import MLP

    if name == "default":  # MLP, plain last layers
        return {}
    if name == "relu_last":  # PyG's example MLPs: a ReLU after every layer
        return {"pos_nn": MLP([3, 12, 16], plain_last=False),
                "attn_nn": MLP([16, 12, 16], plain_last=False)}
    if name == "identity":  # no attn_nn (PyG's default PointTransformerConv)
        return {"attn_nn": nn.Identity()}
    if name == "sequential":  # one-layer theta, three-layer gamma, a missing bias
        return {"pos_nn": nn.Sequential(nn.Linear(3, 16), nn.ReLU()),
                "attn_nn": nn.Sequential(nn.Linear(16, 16, bias=False), nn.ReLU(),
                                         nn.Linear(16, 8), nn.ReLU(),
                                         nn.Linear(8, 16))}
    raise ValueError(name)


@pytest.fixture
def small_cloud():
    """A 3-point cloud (< k = 6: masked neighbours) and a 27-point one."""
    g = torch.Generator().manual_seed(5)
    pos, x = torch.randn(30, 3, generator=g), torch.randn(30, 8, generator=g)
    return x, pos, torch.tensor([0] * 3 + [1] * 27)


@pytest.fixture
def fast_calls(monkeypatch):
    """Counts the calls of the hand-written vector path."""
    import pointsam.nn.local_attention as la

    calls = []
    orig = la.fused_vector_attention

    def spy(*args, **kwargs):
        calls.append(1)
        return orig(*args, **kwargs)

    monkeypatch.setattr(la, "fused_vector_attention", spy)
    return calls


@pytest.mark.parametrize("nets", ["default", "relu_last", "identity", "sequential"])
def test_vector_fast_path_equals_plain(small_cloud, nets, fast_calls):
    """Values and every gradient (x, pos, parameters) of the hand-written path
    equal autograd on the plain path, with masked neighbours, in float64."""
    x, pos, batch = (t.double() if t.is_floating_point() else t for t in small_cloud)
    torch.manual_seed(0)
    m = make("vector", **_nets(nets)).double()
    res = []
    for fused in (True, False):
        m.fused = fused
        xx, pp = x.clone().requires_grad_(True), pos.clone().requires_grad_(True)
        out = m(xx, pp, batch)
        grads = torch.autograd.grad(out.sin().sum(), [xx, pp, *m.parameters()])
        res.append((out, grads))
    assert len(fast_calls) == 1  # the fused run took the fast path
    assert torch.allclose(res[0][0], res[1][0], atol=1e-12)
    for a, b in zip(res[0][1], res[1][1]):
        assert torch.allclose(a, b, atol=1e-10)
    ref = ref_vector(m, x, pos, *ops.knn(pos, 6, batch))
    assert torch.allclose(res[0][0], ref, atol=1e-10)


@pytest.mark.parametrize("nets", ["relu_last", "identity"])
def test_vector_fast_path_gradcheck(small_cloud, nets, fast_calls):
    x, pos, batch = (t.double() if t.is_floating_point() else t for t in small_cloud)
    torch.manual_seed(1)
    m = make("vector", chunk_size=4, **_nets(nets)).double()
    idx, mask = ops.knn(pos, 6, batch)
    x, pos = x.requires_grad_(True), pos.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: m(a, b, batch, idx, mask), (x, pos))
    assert fast_calls


def test_vector_fast_path_pyg_mlp_and_fallbacks(cloud, fast_calls):
    """PyG's MLP takes the fast path; hooks, norms and weight requests do not,
    and give the same values."""
    pytest.importorskip("torch_geometric")

    from pointsam.nn import MLP

    x, pos, batch = cloud
    conv = _pyg_conv()
    m = LocalAttention.from_pyg(conv, k=6)
    out = m(x, pos, batch)
    assert len(fast_calls) == 1
    plain = copy.deepcopy(m)
    plain.fused = False
    assert torch.allclose(out, plain(x, pos, batch), atol=1e-5)
    # attention weights requested: the generic path
    out2, _ = m(x, pos, batch, return_attention=True)
    assert len(fast_calls) == 1 and torch.allclose(out2, out, atol=1e-5)
    # a forward hook on a linear map would be skipped: the generic path runs it
    seen = []
    h = m.lin_src.register_forward_hook(lambda mod, i, o: seen.append(o.shape))
    assert torch.allclose(m(x, pos, batch), out, atol=1e-5)
    h.remove()
    assert seen and len(fast_calls) == 1
    # a norm inside attn_nn: not a Linear/ReLU chain
    ln = LocalAttention(8, 16, k=6, mode="vector",
                        attn_nn=MLP([16, 16, 16], norm_layer=torch.nn.LayerNorm))
    ln(x, pos, batch)
    assert len(fast_calls) == 1


def test_vector_fast_path_output_may_change_in_place(cloud, fast_calls):
    x, pos, batch = cloud
    m = make("vector")
    xx = x.clone().requires_grad_(True)
    out = m(xx, pos, batch)
    out += 1.0  # a residual written in place, as with the plain path
    out.square().sum().backward()
    assert fast_calls and torch.isfinite(xx.grad).all()
