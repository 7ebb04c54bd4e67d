"""PointNet++: its layers against their definitions, the backbone."""

from __future__ import annotations

import pytest
import torch

from pointsam.models import FeaturePropagation, PointNet2, create_model
from pointsam.models.pointnet2 import GlobalSetAbstraction, SetAbstraction
from tests.models._models_tiny import ragged


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


_STAGES = [{"sample": 8, "radius": 1.0, "k": 4, "mlp": [8]},
           {"sample": 4, "radius": 2.0, "k": 4, "mlp": [8, 16]}]


def test_constructors_call_reset_parameters(monkeypatch):
    calls = []
    for cls in (SetAbstraction, GlobalSetAbstraction, FeaturePropagation, PointNet2):
        orig = cls.reset_parameters

        def spy(self, _orig=orig, _cls=cls):
            calls.append(_cls)
            _orig(self)
        monkeypatch.setattr(cls, "reset_parameters", spy)
    PointNet2(stages=_STAGES, global_mlp=[8], decoder=[[8], [8], [8]])
    assert {SetAbstraction, GlobalSetAbstraction, FeaturePropagation,
            PointNet2} <= set(calls)


def test_reset_parameters_reinitialises_every_child():
    net = PointNet2(stages=_STAGES, global_mlp=[8], attention="cbam",
                    fusion="laff")
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(7.0)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.fill_(7.0)
    net.reset_parameters()
    assert all(not bool((p == 7.0).all()) for p in net.parameters())
    assert all(bool((m.running_mean == 0).all()) for m in net.modules()
               if isinstance(m, torch.nn.BatchNorm1d))


def test_device_dtype_and_repr():
    net = PointNet2(stages=_STAGES, global_mlp=[8], decoder=[[8], [8], [8]],
                    attention="cbam", dtype=torch.float64, device="cpu").eval()
    assert {p.dtype for p in net.parameters()} == {torch.float64}
    assert {b.dtype for b in net.buffers() if b.is_floating_point()} == {torch.float64}
    pos, batch = ragged()
    out = net(None, pos.double(), batch)
    assert out.dtype == torch.float64 and out.shape == (pos.size(0), 8)
    assert net.extra_repr() == ("in_channels=0, out_channels=8, stages=2, "
                                "grouping='ball', fusion='concat', num_categories=0")
    assert net.global_sa.extra_repr() == "16, 8"
    assert "in_channels=0, out_channels=8, stages=2" in repr(net)
    with pytest.raises(ValueError, match="decoder needs 3"):
        PointNet2(stages=_STAGES, global_mlp=[8], decoder=[[8]])


def _plain(model: torch.nn.Module) -> torch.nn.Module:
    from pointsam.nn import MLP

    for m in model.modules():
        if isinstance(m, MLP):
            m.fused = False
    return model


def test_interpolate_equals_gather():
    from pointsam.models.pointnet2_layers import interpolate

    g = torch.Generator().manual_seed(2)
    x = torch.randn(9, 5, generator=g, dtype=torch.float64)
    idx = torch.randint(0, 9, (20, 3), generator=g)
    w = torch.rand(20, 3, generator=g, dtype=torch.float64)
    ref = (w.unsqueeze(-1) * x[idx]).sum(1)
    torch.testing.assert_close(interpolate(x, idx, w), ref)
    torch.testing.assert_close(interpolate(x.half(), idx, w).double(), ref,
                               rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("name", ["pointnet2_lite_semseg", "pointnet2_lite_partseg",
                                  "pointnet2_lite_cls"])
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_network_equals_plain(name, threads, monkeypatch):
    # one thread: many blocks of centres and rows (small _BLOCK); two: one block
    from pointsam.nn import common

    monkeypatch.setattr(common, "_BLOCK", 2000)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _fused_network_equals_plain(name)
    finally:
        torch.set_num_threads(before)


def _fused_network_equals_plain(name):
    # the eval fast path (BatchNorm folded, first FP layer before the
    # interpolation, ReLU after the max) against the plain layers
    torch.manual_seed(0)
    m = create_model(name)
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():  # non-trivial statistics, some negative scales
        if isinstance(mod, torch.nn.BatchNorm1d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=g))
            mod.running_var.copy_(torch.rand(c, generator=g) + 0.2)
            mod.weight.data.copy_(torch.randn(c, generator=g))
            mod.bias.data.copy_(torch.randn(c, generator=g))
    m.eval()
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(700, 3, generator=g)
    batch = torch.tensor([0] * 300 + [1] * 400)
    kw = {"category": torch.tensor([2, 5])} if "part" in name else {}
    with torch.no_grad():
        fused = m(pos=pos, batch=batch, **kw)
        plain = _plain(m)(pos=pos, batch=batch, **kw)
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-4)
