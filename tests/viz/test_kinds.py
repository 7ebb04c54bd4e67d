"""The one table from weight kinds to pictures and viewer maps, read by kind, not name."""

import torch
from torch import nn

import pointsam.nn as pnn
from pointsam.nn import PointModule, WeightKind
from pointsam.viz import attention_maps, build_scene, capture, capture_inputs
from pointsam.viz.kind_views import UNDECLARED, VIEWS
from pointsam.viz.kinds import PLAIN_KINDS


def _point_modules(cls: type = PointModule) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _point_modules(sub)
    return {c for c in out if c.__module__.startswith("pointsam.nn")}


def test_the_table_covers_every_kind():
    assert set(VIEWS) == set(WeightKind)
    for kind, view in VIEWS.items():
        assert (view.picture is not None and view.viewer is not None) or \
            (view.picture is None and view.viewer is None and view.why_not), kind
    assert UNDECLARED.picture is not None and UNDECLARED.viewer is not None
    # and every word of the vocabulary is used by some module
    declared = {k for c in _point_modules() for k in c.weight_kinds.values()}
    assert declared == set(WeightKind)


class Renamed(nn.Module):
    """Names that mislead a name-based guess: an AxialAttention called ``mixer``
    and a MultiBranchAttention of a LocalAttention called ``axial``."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.lin = nn.Linear(3, c)
        self.mixer = pnn.AxialAttention(c, num_heads=2, k=5)
        self.axial = pnn.MultiBranchAttention(
            [pnn.LocalAttention(c, num_heads=2, k=5), pnn.PointGate(c, k=5)], num_heads=2)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        return self.axial(self.mixer(self.lin(pos), pos), pos)


def test_declared_kinds_not_module_names_decide():
    torch.manual_seed(0)
    pos = torch.randn(40, 3)
    model = Renamed().eval()
    with torch.no_grad(), capture(model) as rec, capture_inputs(model) as inputs:
        model(pos)
    assert rec.kinds["mixer"]["x"] is WeightKind.AXIS_TUBE
    by = {m.layer: m for m in attention_maps(rec, inputs, pos)}  # no branch_names
    assert [p.title for p in by["mixer.fuse"].panels] == ["x", "y", "z"]
    assert [p.title for p in by["axial.fuse"].panels] == ["LocalAttention", "PointGate"]
    assert by["mixer.branches.0"].kind == by["axial.branches.0"].kind == "neighbour"
    names = {(m["layer"], m["name"]) for m in build_scene(rec, inputs, pos).maps}
    assert ("mixer.branches.1", "axial tube of the query (click)") in names
    assert ("axial.branches.0", "neighbours of the query (click)") in names
    assert ("mixer.fuse", "LAFF weight of z") in names


class Scored(PointModule):
    """A user's module: a per-point score, declared a point gate."""

    in_channels = out_channels = 4
    weight_kinds = {"score": WeightKind.POINT_GATE}

    def forward(self, x, pos, batch=None, nbr_idx=None, nbr_mask=None, *,
                return_attention=False):
        want = self.wants_attention(return_attention)
        s = torch.sigmoid(x[:, :1])  # [N, 1]
        return self.finish(x * s, {"score": s} if want else None, return_attention)


def test_a_declared_user_module_is_drawn_by_its_kind_and_a_plain_dict_by_none():
    x, pos = torch.randn(20, 4), torch.randn(20, 3)
    m = Scored()
    with capture(m) as rec, capture_inputs(m) as inputs:
        m(x, pos)
    (amap,) = attention_maps(rec, inputs, pos)
    assert (amap.kind, amap.key, amap.title) == ("point", "score", "model: point gate")
    torch.testing.assert_close(torch.from_numpy(amap.panels[0].values).float(),
                               rec[""]["score"][:, 0])
    # a plain dict carries no declarations: a key that means one kind in every
    # module of pointsam.nn keeps it, any other is undeclared (the mean)
    assert PLAIN_KINDS["point"] is WeightKind.POINT_GATE
    assert "attn" not in PLAIN_KINDS and "a" not in PLAIN_KINDS
    (plain,) = attention_maps(dict(rec), inputs, pos)
    assert (plain.kind, plain.title) == ("mean", "model: mean score per point")
    maps = build_scene({"": {"score": rec[""]["score"]}}, inputs, pos).maps
    assert [mp["name"] for mp in maps] == ["mean score", "height (z)"]
    maps = build_scene({"": {"point": rec[""]["score"]}}, inputs, pos).maps
    assert [mp["name"] for mp in maps] == ["point gate", "height (z)"]
