"""Attention per stage: every name in every backbone, specs, errors, capture."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from pointsam.models import ATTENTION, DGCNN, PointNet2, build_attention, create_model
from pointsam.nn import CBAM, LocalAttention, record_attention
from tests.models._models_tiny import ragged, tiny

BACKBONES = ["pointnet2_lite_cls", "dgcnn_lite_semseg"]


def test_design_names_present():
    assert {"cbam", "local_global", "axial", "local", "global", "channel",
            "point"} <= set(ATTENTION)


@pytest.mark.parametrize("name", sorted(ATTENTION))
@pytest.mark.parametrize("model", BACKBONES)
def test_each_attention_plugs_into_each_backbone(model, name):
    m = create_model(model, num_classes=4, attention=name, **tiny(model))
    stages = m.backbone.stages
    assert all(isinstance(s.attn, ATTENTION[name]) for s in stages)
    pos, batch = ragged()
    m.train()
    out = m(pos=pos, batch=batch)
    out.sum().backward()
    for s in stages:  # the attention is on the gradient path
        assert any(p.grad is not None and p.grad.abs().sum() > 0
                   for p in s.attn.parameters())
    m.eval()
    with torch.no_grad():
        full = m(pos=pos, batch=batch)
        s, e = 9, 23
        alone = m(pos=pos[s:e], batch=None)
    if model.endswith("_cls"):
        assert torch.allclose(full[1:2], alone, atol=1e-4)
    else:
        assert torch.allclose(full[s:e], alone, atol=1e-4)


def test_per_stage_list_and_capture():
    m = create_model("pointnet2_lite_cls", num_classes=3,
                     attention=[None, "cbam"], **tiny("pointnet2_lite_cls")).eval()
    assert m.backbone.stages[0].attn is None
    assert isinstance(m.backbone.stages[1].attn, CBAM)
    pos, batch = ragged()
    with record_attention(m) as rec:
        m(pos=pos, batch=batch)
    assert "backbone.stages.1.attn" in rec
    w = rec["backbone.stages.1.attn.point"]
    assert next(iter(w.values())).shape[0] == 3 * 4  # 4 centres per cloud


def test_classes_factories_dicts_instances():
    mods = build_attention(
        [CBAM, partial(LocalAttention, num_heads=2), {"name": "local", "num_heads": 4},
         LocalAttention(16, num_heads=2), None], [8, 8, 16, 16, 4])
    assert isinstance(mods[0], CBAM) and mods[0].channels == 8
    assert mods[1].num_heads == 2 and mods[2].num_heads == 4
    assert mods[4] is None
    net = DGCNN(channels=[[8], [16]], k=4, emb_channels=16,
                attention=[partial(LocalAttention, num_heads=2), CBAM]).eval()
    pos, batch = ragged()
    assert net(None, pos, batch).shape == (3, 32)


def test_attention_neighbour_table_is_passed():
    """The stage's table reaches the module: a module with k=1 still sees k nbrs."""
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x, pos, batch, nbr_idx=None, nbr_mask=None):
            seen.append(nbr_idx.shape)
            return torch.zeros_like(x)

    net = PointNet2(stages=[{"sample": 8, "radius": 1.0, "k": 4, "mlp": [8]}],
                    global_mlp=[8], attention=lambda c: Spy(), attention_k=5).eval()
    pos, batch = ragged()
    net(None, pos, batch)
    assert seen == [torch.Size([24, 5])]


def test_attention_k_per_stage():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x, pos, batch, nbr_idx=None, nbr_mask=None):
            seen.append(nbr_idx.size(1))
            return torch.zeros_like(x)

    stages = [{"sample": 8, "radius": 1.0, "k": 4, "mlp": [8]},
              {"sample": 4, "radius": 2.0, "k": 4, "mlp": [8]}]
    net = PointNet2(stages=stages, global_mlp=[8], attention=lambda c: Spy(),
                    attention_k=[3, 2]).eval()
    pos, batch = ragged()
    net(None, pos, batch)
    assert seen == [3, 2]
    for bad in (0, [3], [3, 0], True):
        with pytest.raises(ValueError, match="attention_k"):
            PointNet2(stages=stages, global_mlp=[8], attention="cbam",
                      attention_k=bad)
    with pytest.raises(ValueError, match="stage 1: "):
        PointNet2(stages=[stages[0], {**stages[1], "radius": -1.0}], global_mlp=[8])


@pytest.mark.parametrize("bad, match", [
    ("cbamm", "unknown attention 'cbamm'.*valid names"),
    (["cbam"], "1 entries but the backbone has 2 stages"),
    ({"name": "nope"}, "needs a 'name' in"),
    (3.5, "bad attention spec"),
])
def test_bad_attention_spec_lists_choices(bad, match):
    with pytest.raises(ValueError, match=match):
        create_model("dgcnn_lite_cls", attention=bad, **tiny("dgcnn_lite_cls"))
    with pytest.raises(ValueError, match=match):
        create_model("pointnet2_lite_cls", attention=bad, **tiny("pointnet2_lite_cls"))


def test_shared_instance_refused():
    with pytest.raises(ValueError, match="several stages"):
        DGCNN(channels=[[8], [8]], attention=CBAM(8))


def test_width_changing_module_refused():
    with pytest.raises(ValueError, match="keep the width"):
        net = DGCNN(channels=[[8]], k=4, emb_channels=8,
                    attention=lambda c: LocalAttention(c, 2 * c, num_heads=2))
        net(None, *ragged())


@pytest.mark.parametrize("kwargs, match", [
    ({"fusion": "sum"}, r"unknown fusion 'sum'; choose from \('concat', 'laff'\)"),
    ({"dilation": [1, 2, 5]}, "dilation has 3 entries but the backbone has 2"),
    ({"task": "det"}, "unknown task"),
])
def test_bad_dgcnn_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DGCNN(channels=[[8], [8]], **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"grouping": "grid"}, r"unknown grouping 'grid'; choose from \('ball', 'knn'\)"),
    ({"decoder": [[8]]}, "decoder needs 2 feature propagations"),
    ({"stages": [{"sample": 4, "mlp": [8], "radios": 1}]}, "keys"),
    ({"stages": [{"sample": 4, "radius": [0.1, 0.2], "k": 4, "mlp": [8]}]},
     "radii must be 1 positive"),
])
def test_bad_pointnet2_config(kwargs, match):
    base = {"stages": [{"sample": 4, "radius": 0.5, "k": 4, "mlp": [8]}],
            "global_mlp": [8]}
    with pytest.raises(ValueError, match=match):
        PointNet2(**{**base, **kwargs})


@pytest.mark.parametrize("model", ["pointnet2_msg_cls", "dgcnn_lite_cls"])
def test_laff_fusion(model):
    m = create_model(model, num_classes=3, fusion="laff", **tiny(model))
    assert m.backbone.stages[0].fuse is not None if "msg" in model \
        else m.backbone.fuse is not None
    pos, batch = ragged()
    out = m.train()(pos=pos, batch=batch)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
