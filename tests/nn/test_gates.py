import pytest
import torch

from pointsam.nn import CBAM, ChannelGate, PointGate, record_attention


@pytest.fixture
def cloud():
    g = torch.Generator().manual_seed(0)
    pos, x = torch.randn(30, 3, generator=g), torch.randn(30, 16, generator=g)
    return x, pos, torch.tensor([0] * 12 + [1] * 18)


def make(name):
    return {"channel": lambda: ChannelGate(16, reduction=4),
            "point": lambda: PointGate(16, k=6),
            "cbam": lambda: CBAM(16, reduction=4, k=6)}[name]().eval()


NAMES = ["channel", "point", "cbam"]


def channel_ref(gate, x, batch):
    """ChannelGate by a loop over clouds: w_b = sigmoid(MLP(avg) + MLP(max))."""
    out, ws = torch.empty_like(x), []
    for b in range(int(batch.max()) + 1):
        xb = x[batch == b]
        w = torch.sigmoid(gate.mlp(xb.mean(0)) + gate.mlp(xb.max(0).values))
        out[batch == b] = xb * w
        ws.append(w)
    return out, torch.stack(ws)


def point_ref(gate, x, pos, batch):
    """PointGate point by point (eval): a_i = mean_j K(p_j - p_i) . s_j over the
    brute-force k nearest points of i's cloud (i included), then the batch norm's
    running statistics and affine, then the sigmoid."""
    s = torch.stack([x.mean(1), x.max(1).values], -1)
    bn = gate.norm
    m = torch.empty(x.size(0), 1)
    for i in range(x.size(0)):
        same = (batch == batch[i]).nonzero().flatten()
        d = (pos[same] - pos[i]).norm(dim=1)
        nb = same[d.argsort()[: gate.k]].tolist()
        a = sum(gate.kernel(pos[j] - pos[i]) @ s[j] for j in nb) / len(nb)
        z = (a - bn.running_mean[0]) / torch.sqrt(bn.running_var[0] + bn.eps)
        m[i, 0] = torch.sigmoid(bn.weight[0] * z + bn.bias[0])
    return x * m, m


@pytest.mark.parametrize("name", NAMES)
def test_shape_repr_and_weights(cloud, name):
    x, pos, batch = cloud
    m = make(name)
    out, attn = m(x, pos, batch, return_attention=True)
    assert out.shape == (30, 16)
    assert torch.equal(m(x, pos, batch), out)
    shapes = {"channel": (2, 16), "point": (30, 1)}
    want = {"channel": ["channel"], "point": ["point"], "cbam": ["channel", "point"]}
    assert sorted(attn) == want[name]
    for key, a in attn.items():
        assert a.shape == shapes[key] and bool(((a > 0) & (a < 1)).all())
    assert "16" in repr(m)


def test_repr_details():
    assert "reduction=4" in repr(ChannelGate(16, reduction=4))
    assert "k=6" in repr(PointGate(16, k=6))


def test_channel_gate_equals_reference(cloud):
    x, pos, batch = cloud
    gate = make("channel")
    out, attn = gate(x, pos, batch, return_attention=True)
    ref_out, ref_w = channel_ref(gate, x, batch)
    assert torch.allclose(out, ref_out, atol=1e-6)
    assert torch.allclose(attn["channel"], ref_w, atol=1e-6)


@pytest.mark.parametrize("k", [6, 16])  # 16 > the 12 points of cloud 0
def test_point_gate_equals_reference(cloud, k):
    x, pos, batch = cloud
    gate = PointGate(16, k=k).eval()
    with torch.no_grad():  # non-trivial statistics and affine
        gate.norm.running_mean.fill_(0.3)
        gate.norm.running_var.fill_(2.0)
        gate.norm.weight.fill_(1.5)
        gate.norm.bias.fill_(-0.2)
    out, attn = gate(x, pos, batch, return_attention=True)
    ref_out, ref_m = point_ref(gate, x, pos, batch)
    assert torch.allclose(attn["point"], ref_m, atol=1e-5)
    assert torch.allclose(out, ref_out, atol=1e-5)


def test_cbam_equals_channel_then_point(cloud):
    x, pos, batch = cloud
    cbam = make("cbam")
    y, _ = channel_ref(cbam.channel, x, batch)
    ref, _ = point_ref(cbam.point, y, pos, batch)
    assert torch.allclose(cbam(x, pos, batch), ref, atol=1e-5)


def test_point_gate_uses_given_table(cloud):
    x, pos, batch = cloud
    gate = make("point")
    idx = torch.arange(30).unsqueeze(1)  # each point alone
    out, attn = gate(x, pos, batch, idx, return_attention=True)
    s = torch.stack([x.mean(1), x.max(1).values], -1)
    a = (gate.kernel(torch.zeros(1, 3)) * s).sum(-1, keepdim=True)
    assert torch.allclose(attn["point"], torch.sigmoid(gate.norm(a)), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_gradients(cloud, name):
    x, pos, batch = cloud
    m = make(name).train()
    x = x.clone().requires_grad_()
    m(x, pos, batch).square().sum().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
    for n, p in m.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), n


@pytest.mark.parametrize("name", NAMES)
def test_permutation_equivariance(cloud, name):
    x, pos, batch = cloud
    m = make(name)
    perm = torch.cat([torch.randperm(12), 12 + torch.randperm(18)])
    out = m(x, pos, batch)
    assert torch.allclose(m(x[perm], pos[perm], batch), out[perm], atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_batch_independence(cloud, name):
    x, pos, batch = cloud
    m = make(name)
    out = m(x, pos, batch)
    assert torch.allclose(out[:12], m(x[:12], pos[:12]), atol=1e-5)
    assert torch.allclose(out[12:], m(x[12:], pos[12:]), atol=1e-5)
    x2, pos2 = x.clone(), pos.clone()
    x2[12:] = 10 * torch.randn(18, 16)
    pos2[12:] = torch.randn(18, 3)
    out2 = m(x2, pos2, batch)
    assert torch.equal(out2[:12], out[:12])
    assert not torch.allclose(out2[12:], out[12:])


@pytest.mark.parametrize("name", NAMES)
def test_translation_invariance(cloud, name):
    x, pos, batch = cloud
    m = make(name)
    shift = torch.tensor([3.0, -2.0, 5.0])
    assert torch.allclose(m(x, pos + shift, batch), m(x, pos, batch), atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_cloud_smaller_than_k(name):
    m = make(name)
    x, pos = torch.randn(4, 16), torch.randn(4, 3)  # k = 6 > 4 points
    out = m(x, pos)
    assert out.shape == (4, 16) and bool(torch.isfinite(out).all())
    one = m(x[:1], pos[:1])
    assert bool(torch.isfinite(one).all())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_finite(cloud, name, dtype):
    x, pos, batch = cloud
    m = make(name)
    ref = m(x, pos, batch)
    out = m.to(dtype)(x.to(dtype), pos.to(dtype), batch)
    assert out.dtype == dtype and bool(torch.isfinite(out).all())
    assert torch.allclose(out.float(), ref, atol=0.1, rtol=0.05)


def test_channel_gate_float16_large_cloud():
    # 30k points of magnitude ~5: a float16 per-cloud sum would overflow 65504
    g = torch.Generator().manual_seed(4)
    x = torch.rand(30_000, 8, generator=g) + 4.5
    pos = torch.randn(30_000, 3, generator=g) * 30
    m = ChannelGate(8, reduction=2)
    ref = m(x, pos)
    out = m.half()(x.half(), pos.half())
    assert bool(torch.isfinite(out).all())
    assert torch.allclose(out.float(), ref, atol=0.05, rtol=0.02)


@pytest.mark.parametrize("name", NAMES)
def test_bad_inputs(cloud, name):
    x, pos, batch = cloud
    m = make(name)
    with pytest.raises(ValueError, match="channels"):
        m(torch.randn(30, 8), pos, batch)
    with pytest.raises(ValueError, match="rows"):
        m(x[:20], pos, batch)
    with pytest.raises(ValueError, match="batch"):
        m(x, pos, batch[:20])
    with pytest.raises(ValueError, match="sorted"):
        m(x, pos, batch.flip(0))
    with pytest.raises(ValueError, match="NaN"):
        m(x, pos.index_fill(0, torch.tensor([3]), float("nan")), batch)
    with pytest.raises(ValueError, match="features x"):
        m(None, pos, batch)


def test_bad_constructor_and_table(cloud):
    x, pos, batch = cloud
    with pytest.raises(ValueError, match="reduction"):
        ChannelGate(16, reduction=0)
    with pytest.raises(ValueError, match="k"):
        PointGate(16, k=0)
    with pytest.raises(ValueError, match="nbr_idx"):
        PointGate(16)(x, pos, batch, torch.zeros(30, 4, dtype=torch.long))


def test_cbam_records_itself_and_children(cloud):
    x, pos, batch = cloud
    m = make("cbam")
    with record_attention(m) as rec:
        out = m(x, pos, batch)
    assert sorted(rec) == ["", "channel", "point"]
    assert torch.equal(rec[""]["channel"], rec["channel"]["channel"])
    assert torch.equal(rec[""]["point"], rec["point"]["point"])
    assert torch.equal(out, m(x, pos, batch))


@pytest.mark.parametrize("name", NAMES)
def test_device_matches_cpu(cloud, name, device):
    x, pos, batch = cloud
    m = make(name)
    ref, ref_attn = m(x, pos, batch, return_attention=True)
    out, attn = m.to(device)(x.to(device), pos.to(device), batch.to(device),
                             return_attention=True)
    assert out.device.type == device.type
    assert torch.allclose(out.cpu(), ref, atol=1e-4)
    for key in ref_attn:
        assert torch.allclose(attn[key].cpu(), ref_attn[key], atol=1e-5)


def test_point_gate_is_not_stuck_open_on_positive_features():
    """Post-ReLU features (all positive, mean ~1, max ~3, as in a trained
    PointNet++) summed over k neighbours drove the old gate's logit to 5-16:
    m = 1 everywhere, no gradient. With the neighbour mean and the batch norm
    before the sigmoid the gate spreads and its kernel gets a gradient."""
    g = torch.Generator().manual_seed(0)
    x = torch.relu(torch.randn(400, 64, generator=g) * 1.5 + 0.5)
    pos = torch.randn(400, 3, generator=g)
    gate = PointGate(64, k=16).train()
    _, attn = gate(x, pos, return_attention=True)
    m = attn["point"].flatten()
    lo, hi = torch.quantile(m, torch.tensor([0.05, 0.95])).tolist()
    assert hi - lo > 0.3, (lo, hi)
    m.sum().backward()
    grad = gate.kernel.lins[0].weight.grad
    assert grad is not None and float(grad.abs().max()) > 1e-4
