"""DGCNN: EdgeConv and the transform net against their definitions, the backbone."""

from __future__ import annotations

import torch

from pointsam import ops
from pointsam.models import DGCNN, EdgeConv
from pointsam.models.dgcnn import SpatialTransform
from tests.models._models_tiny import build_tiny as _build
from tests.models._models_tiny import model_data as _data
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


def test_changing_one_cloud_leaves_the_others():
    m = _build("dgcnn_lite_semseg").eval()
    data = _data("dgcnn_lite_semseg")
    pos2 = data.pos.clone()
    pos2[data.batch == 0] *= 3.0
    with torch.no_grad():
        a = m(data)
        b = m(pos=pos2, batch=data.batch)
    keep = data.batch != 0
    assert torch.allclose(a[keep], b[keep], atol=1e-5)
    assert not torch.allclose(a[~keep], b[~keep])


def test_spatial_transform_starts_as_identity_and_is_per_cloud():
    g = torch.Generator().manual_seed(6)
    pos = torch.randn(40, 3, generator=g)
    batch = torch.tensor([0] * 15 + [1] * 25)
    t = SpatialTransform().eval()
    idx = ops.knn(pos, 6, batch)[0]
    out, m = t(pos, idx, batch, 2)
    assert torch.equal(out, pos) and torch.equal(m, torch.eye(3).expand(2, 3, 3))
    torch.nn.init.normal_(t.transform.weight, std=0.1, generator=g)
    out, m = t(pos, idx, batch, 2)
    # p'_i = p_i T_b, and cloud 0's transform ignores cloud 1's points
    assert torch.allclose(out[:15], pos[:15] @ m[0], atol=1e-6)
    pos2 = pos.clone()
    pos2[15:] += 3.0
    _, m2 = t(pos2, ops.knn(pos2, 6, batch)[0], batch, 2)
    assert torch.allclose(m2[0], m[0], atol=1e-6)
    assert not torch.allclose(m2[1], m[1])


def test_constructors_call_reset_parameters(monkeypatch):
    calls = []
    for cls in (EdgeConv, SpatialTransform, DGCNN):
        orig = cls.reset_parameters

        def spy(self, _orig=orig, _cls=cls):
            calls.append(_cls)
            _orig(self)
        monkeypatch.setattr(cls, "reset_parameters", spy)
    DGCNN(channels=[[8]], k=4, emb_channels=8, spatial_transform=True)
    assert {EdgeConv, SpatialTransform, DGCNN} <= set(calls)


def test_reset_parameters_reinitialises_the_attention_too():
    net = DGCNN(channels=[[8], [8]], k=4, emb_channels=8, attention="local")
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(7.0)
    net.stages[1].reset_parameters()
    assert all(not bool((p == 7.0).all()) for p in net.stages[1].parameters())
    net.reset_parameters()
    assert all(not bool((p == 7.0).all()) for p in net.parameters())
    t = SpatialTransform()
    with torch.no_grad():
        t.transform.weight.fill_(1.0)
    t.reset_parameters()  # back to the identity transform
    assert bool((t.transform.weight == 0).all())


def test_device_dtype_and_repr():
    net = DGCNN(channels=[[8], [8]], k=4, emb_channels=8, attention="cbam",
                spatial_transform=True, num_categories=3, category_channels=4,
                task="seg", dtype=torch.float64, device="cpu").eval()
    assert {p.dtype for p in net.parameters()} == {torch.float64}
    pos, batch = ragged()
    out = net(None, pos.double(), batch, category=torch.tensor([0, 1, 2]))
    assert out.dtype == torch.float64 and out.shape == (pos.size(0), 8 + 4 + 16)
    assert net.spatial_transform.extra_repr() == "negative_slope=0.2"
    assert net.stages[0].extra_repr() == "3, [8]"
    assert "SpatialTransform(\n    negative_slope=0.2" in repr(net)
