import pytest
import torch
from torch import nn

from pointsam import ops
from pointsam.nn import MLP, check_inputs, neighbours
from pointsam.nn.common import run_folded


def test_mlp_shapes_repr_and_layers():
    m = MLP([3, 16, 8])
    assert m(torch.randn(5, 4, 3)).shape == (5, 4, 8)
    assert "[3, 16, 8]" in repr(m)
    assert len(m.lins) == 2 and len(m.acts) == 1  # plain last
    m2 = MLP([3, 16, 8], plain_last=False, norm_layer=nn.LayerNorm, bias=False)
    assert len(m2.acts) == 2 and m2.lins[0].bias is None
    assert (m2(torch.randn(7, 3)) >= 0).all()  # ends with ReLU
    bn = MLP([3, 16, 8], norm_layer=nn.BatchNorm1d)
    assert bn(torch.randn(6, 5, 3)).shape == (6, 5, 8)  # BN over flattened [-1, C]


def test_mlp_matches_manual_and_gradients():
    m = MLP([4, 6, 2])
    x = torch.randn(3, 4)
    ref = m.lins[1](torch.relu(m.lins[0](x)))
    assert torch.allclose(m(x), ref)
    m(x).sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_mlp_reset_and_dtype():
    m = MLP([4, 6, 2], dtype=torch.float64)
    assert m.lins[0].weight.dtype == torch.float64
    w = m.lins[0].weight.clone()
    m.reset_parameters()
    assert not torch.equal(w, m.lins[0].weight)
    with pytest.raises(ValueError, match="at least"):
        MLP([4])
    with pytest.raises(ValueError, match="channels"):
        MLP([4, 0])


def test_check_inputs_errors():
    pos, x = torch.randn(6, 3), torch.randn(6, 4)
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    check_inputs(x, pos, batch, in_channels=4)
    idx, mask = ops.knn(pos, 2, batch)
    check_inputs(x, pos, batch, idx, mask, 4)
    with pytest.raises(ValueError, match="x has 4 channels, expected 3"):
        check_inputs(x, pos, batch, in_channels=3)
    with pytest.raises(ValueError, match="x has 5 rows"):
        check_inputs(x[:5], pos, batch)
    with pytest.raises(ValueError, match="int64"):
        check_inputs(x, pos, batch, idx.int())
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        check_inputs(x, pos, batch, idx[:, 0])
    with pytest.raises(ValueError, match="outside"):
        check_inputs(x, pos, batch, idx - 1)
    with pytest.raises(ValueError, match="bool"):
        check_inputs(x, pos, batch, idx, mask.long())
    with pytest.raises(ValueError, match="without nbr_idx"):
        check_inputs(x, pos, batch, None, mask)
    with pytest.raises(ValueError, match="no valid neighbour"):
        check_inputs(x, pos, batch, idx, torch.zeros_like(mask))
    with pytest.raises(ValueError, match="different clouds"):
        check_inputs(x, pos, batch, torch.full_like(idx, 5))
    # a cross-cloud entry that is masked out is fine
    bad = idx.clone()
    bad[0, 1] = 5
    m2 = mask.clone()
    m2[0, 1] = False
    check_inputs(x, pos, batch, bad, m2)
    with pytest.raises(TypeError):
        check_inputs(x, pos.numpy(), batch)


@pytest.mark.parametrize("name", ["LocalAttention", "GlobalPooledAttention",
                                  "AxialAttention", "CBAM",
                                  "MultiHeadPointAttention"])
def test_module_dtype_mismatch_is_named(name):
    import pointsam.nn as pnn

    m = getattr(pnn, name)(*((8,) if name in ("CBAM", "MultiHeadPointAttention")
                               else (8, 8)))
    pos, batch = torch.randn(12, 3), torch.zeros(12, dtype=torch.long)
    with pytest.raises(ValueError, match="torch.float64 but .*torch.float32"):
        m(torch.randn(12, 8, dtype=torch.float64), pos, batch)
    out = m.double()(torch.randn(12, 8, dtype=torch.float64), pos.double(), batch)
    out = out[0] if isinstance(out, tuple) else out
    assert out.dtype == torch.float64
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed dtypes are autocast's job
        m.float()(torch.randn(12, 8), pos, batch)


def test_neighbours_only_computes_when_missing():
    pos = torch.randn(10, 3)
    batch = torch.tensor([0] * 4 + [1] * 6)
    idx, mask = neighbours(pos, batch, 3)
    ref = ops.knn(pos, 3, batch)
    assert torch.equal(idx, ref[0]) and torch.equal(mask, ref[1])
    given = torch.zeros(10, 2, dtype=torch.long)
    i2, m2 = neighbours(pos, batch, 3, nbr_idx=given)
    assert i2 is given and m2.shape == (10, 2) and bool(m2.all())
    d_idx, _ = neighbours(pos, batch, 2, dilation=2)
    assert torch.equal(d_idx, ops.knn(pos, 2, batch, dilation=2)[0])


def test_linear_chain():
    from pointsam.nn.common import linear_chain

    assert linear_chain(nn.Identity()) == []
    lin = nn.Linear(3, 4)
    assert linear_chain(lin) == [(lin.weight, lin.bias, False)]
    seq = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2))
    layers = linear_chain(seq)
    assert [(w.shape, b is None, relu) for w, b, relu in layers] == [
        ((4, 3), True, True), ((2, 4), False, False)]
    assert linear_chain(nn.Sequential(nn.Linear(3, 4), nn.GELU())) is None
    assert linear_chain(nn.Sequential(nn.ReLU(), nn.Linear(3, 4))) is None
    m = MLP([3, 8, 8, 2], plain_last=False)
    assert [relu for _, _, relu in linear_chain(m)] == [True, True, True]
    assert linear_chain(MLP([3, 8], norm_layer=nn.LayerNorm, plain_last=False)) is None
    h = m.register_forward_pre_hook(lambda mod, args: None)
    assert linear_chain(m) is None  # a fast path would skip the hook
    h.remove()
    h = m.lins[0].register_full_backward_hook(lambda mod, gi, go: None)
    assert linear_chain(m) is None
    h.remove()
    assert linear_chain(m) is not None
    x = torch.randn(5, 3)
    for mod in (seq, m, MLP([3, 6, 2])):  # the chain computes what the module does
        y = x
        for w, b, relu in linear_chain(mod):
            y = nn.functional.linear(y, w, b)
            y = y.relu() if relu else y
        assert torch.allclose(y, mod(x), atol=1e-6)


def test_linear_chain_pyg_mlp():
    pytest.importorskip("torch_geometric")
    from torch_geometric.nn import MLP as PygMLP

    from pointsam.nn.common import linear_chain

    x = torch.randn(5, 3)
    for plain_last in (True, False):
        m = PygMLP([3, 8, 4], norm=None, plain_last=plain_last).eval()
        layers = linear_chain(m)
        assert [relu for _, _, relu in layers] == [True, not plain_last]
        y = x
        for w, b, relu in layers:
            y = nn.functional.linear(y, w, b)
            y = y.relu() if relu else y
        assert torch.allclose(y, m(x), atol=1e-6)
    drop = PygMLP([3, 8, 4], norm=None, dropout=0.5)
    assert linear_chain(drop.train()) is None and linear_chain(drop.eval()) is not None
    assert linear_chain(PygMLP([3, 8, 4], norm="batch_norm")) is None
    assert linear_chain(PygMLP([3, 8, 4], norm=None, act="tanh")) is None
def _bn_stats(m: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, then eval mode."""
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm1d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=g))
            mod.running_var.copy_(torch.rand(c, generator=g) + 0.2)
            if mod.weight is not None:
                mod.weight.data.copy_(torch.randn(c, generator=g))  # some < 0
                mod.bias.data.copy_(torch.randn(c, generator=g))
    return m.eval()


@pytest.mark.parametrize("affine,bias", [(True, True), (False, False)])
def test_mlp_fused_equals_plain(affine, bias):
    m = _bn_stats(MLP([5, 16, 8], plain_last=False, bias=bias,
                      norm_layer=lambda c: nn.BatchNorm1d(c, affine=affine)))
    x = torch.randn(40, 6, 5)
    assert m.folded() is not None
    fused = m(x)
    pooled = run_folded(x, m.folded(), max_dim=1)
    m.fused = False
    torch.testing.assert_close(fused, m(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pooled, m(x).max(dim=1).values, rtol=1e-5, atol=1e-5)


def test_mlp_fused_only_where_exact():
    x = torch.randn(7, 3)
    assert MLP([3, 4], norm_layer=nn.BatchNorm1d, plain_last=False).folded() is None
    assert MLP([3, 4, 2], act_layer=nn.GELU).eval().folded() is None
    assert MLP([3, 4, 2], norm_layer=nn.LayerNorm).eval().folded() is None
    plain = MLP([3, 4, 2]).eval()  # no norm: fused is linear + in-place ReLU
    out = plain(x)
    plain.fused = False
    assert torch.equal(out, plain(x))
    # training-mode BatchNorm uses batch statistics: the plain path runs
    tr = MLP([3, 4], norm_layer=nn.BatchNorm1d, plain_last=False).train()
    ref = torch.relu(tr.norms[0](tr.lins[0](x)))
    torch.testing.assert_close(tr(x), ref)
