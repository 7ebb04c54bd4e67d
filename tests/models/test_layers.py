"""EdgeConv, feature propagation and the static graph vs references."""

from __future__ import annotations

import torch

from pointsam import ops
from pointsam.models import DGCNN, EdgeConv, FeaturePropagation
from tests.models._models_tiny import ragged


def test_edgeconv_equals_definition():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 6, generator=g)
    idx, _ = ops.knn(x[:, :3].contiguous(), 5)
    conv = EdgeConv(6, [8, 12]).eval()
    torch.nn.init.normal_(conv.norms[0].running_mean)
    out = conv(x, idx)
    e = torch.cat([x.unsqueeze(1).expand(-1, 5, -1), x[idx] - x.unsqueeze(1)], -1)
    h = conv.lin(e)
    for lin, norm in zip([None, *conv.lins], conv.norms):
        h = h if lin is None else lin(h)
        h = torch.nn.functional.leaky_relu(norm(h.reshape(-1, h.size(-1))).view(
            20, 5, -1), 0.2)
    assert torch.allclose(out, h.max(1).values, atol=1e-5)


def test_feature_propagation_equals_loop():
    g = torch.Generator().manual_seed(0)
    pc, pf = torch.randn(6, 3, generator=g), torch.randn(15, 3, generator=g)
    bc = torch.tensor([0, 0, 0, 0, 1, 1])
    bf = torch.tensor([0] * 7 + [1] * 8)
    xc = torch.randn(6, 4, generator=g)
    fp = FeaturePropagation(4, [4]).eval()
    fp.mlp = torch.nn.Identity()
    out = fp(xc, pc, bc, None, pf, bf)
    for i in range(15):
        same = (bc == bf[i]).nonzero().flatten()
        d2 = ((pc[same] - pf[i]) ** 2).sum(-1)
        near = d2.argsort()[:3]
        w = 1.0 / (d2[near] + 1e-8)
        ref = (w.unsqueeze(1) * xc[same][near]).sum(0) / w.sum()
        assert torch.allclose(out[i], ref, atol=1e-5)


def test_feature_propagation_half_precision_coincident_points():
    # a fine point that coincides with a coarse one (FPS keeps the originals)
    # gives w = 1 / 1e-8, which overflows float16: weights are float32 inside
    g = torch.Generator().manual_seed(1)
    pc = torch.randn(6, 3, generator=g)
    pf = torch.cat([pc, torch.randn(9, 3, generator=g)])  # [15, 3]
    bc, bf = torch.zeros(6, dtype=torch.long), torch.zeros(15, dtype=torch.long)
    xc = torch.randn(6, 4, generator=g)
    fp = FeaturePropagation(4, [4]).eval()
    fp.mlp = torch.nn.Identity()
    ref = fp(xc, pc, bc, None, pf, bf)
    out = fp(xc.half(), pc.half(), bc, None, pf.half(), bf)
    assert out.dtype == torch.float16 and bool(torch.isfinite(out).all())
    assert torch.allclose(out[:6].float(), xc, atol=2e-2)  # coincident: copied
    assert torch.allclose(out.float(), ref, atol=5e-2)


def test_static_graph_equals_dynamic_when_k_covers_the_cloud():
    pos, batch = ragged((6, 8))
    kw = dict(channels=[[8], [8], [8]], k=8, emb_channels=8, task="seg")
    dyn = DGCNN(**kw).eval()
    sta = DGCNN(**kw, static_graph=True).eval()
    sta.load_state_dict(dyn.state_dict())
    assert torch.allclose(dyn(None, pos, batch), sta(None, pos, batch), atol=1e-5)


def test_static_graph_differs_from_dynamic_in_general():
    pos, batch = ragged((30, 40))
    kw = dict(channels=[[8], [8], [8]], k=4, emb_channels=8, task="seg")
    dyn = DGCNN(**kw).eval()
    sta = DGCNN(**kw, static_graph=True).eval()
    sta.load_state_dict(dyn.state_dict())
    assert not torch.allclose(dyn(None, pos, batch), sta(None, pos, batch))


def test_hdc_dilation_runs():
    pos, batch = ragged((30, 40))
    net = DGCNN(channels=[[8]] * 4, k=4, emb_channels=8,
                dilation=ops.hdc_rates(4)).eval()
    assert net.dilation == [1, 2, 5, 1]
    assert net(None, pos, batch).shape == (2, 16)
