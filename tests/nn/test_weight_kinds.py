"""Every attention module declares the kind of every weight it returns or records."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import pointsam.nn as pnn
from pointsam.nn import PointModule, WeightKind, record_attention

C, H = 8, 2


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


#: every PointModule of pointsam.nn (a new one fails the coverage test below)
MODULES = {c for c in _subclasses(PointModule) if c.__module__.startswith("pointsam.nn")}


def _data() -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(30, C, generator=g), torch.randn(30, 3, generator=g),
            torch.tensor([0] * 12 + [1] * 18))


def _past() -> dict[str, list[Tensor]]:
    g = torch.Generator().manual_seed(1)
    return dict(past_x=[torch.randn(20, C, generator=g)],
                past_pos=[torch.randn(20, 3, generator=g)],
                past_batch=[torch.tensor([0] * 8 + [1] * 12)])


def _tokens() -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(2)
    return dict(tokens=torch.randn(7, 4, generator=g),
                token_batch=torch.tensor([0] * 3 + [1] * 4))


def _points(m: PointModule, **kw: object) -> Callable[..., object]:
    x, pos, batch = _data()
    return lambda **extra: m(x, pos, batch, **kw, **extra)


def _levels(m: PointModule, n: int) -> Callable[..., object]:
    x = _data()[0]
    return lambda **extra: m([x] * n, **extra)


#: class -> (id, module, call) cases: small sizes, every configuration whose
#: returned keys differ
CASES: dict[type, list[tuple[str, Callable[[], tuple[PointModule, Callable]]]]] = {
    pnn.ChannelGate: [("", lambda: (m := pnn.ChannelGate(C, reduction=4), _points(m)))],
    pnn.PointGate: [("", lambda: (m := pnn.PointGate(C, k=4), _points(m)))],
    pnn.CBAM: [("", lambda: (m := pnn.CBAM(C, reduction=4, k=4), _points(m)))],
    pnn.LocalAttention: [
        ("scalar", lambda: (m := pnn.LocalAttention(C, num_heads=H, k=4), _points(m))),
        ("vector", lambda: (m := pnn.LocalAttention(C, num_heads=H, k=4, mode="vector"),
                            _points(m)))],
    pnn.GlobalPooledAttention: [("", lambda: (
        m := pnn.GlobalPooledAttention(C, num_heads=H, num_global=4), _points(m)))],
    pnn.LocalGlobalAttention: [
        (f, lambda f=f: (m := pnn.LocalGlobalAttention(C, num_heads=H, k=4, num_global=4,
                                                       fusion=f), _points(m)))
        for f in ("laff", "linear")],
    pnn.AxialAttention: [("", lambda: (m := pnn.AxialAttention(C, num_heads=H, k=4),
                                       _points(m)))],
    pnn.LAFF: [("", lambda: (m := pnn.LAFF([C, C], C, num_heads=H), _levels(m, 2)))],
    pnn.LAFFMultiLevel: [("", lambda: (m := pnn.LAFFMultiLevel([C] * 3, C, num_heads=H),
                                       _levels(m, 3)))],
    pnn.MultiHeadPointAttention: [("", lambda: (
        m := pnn.MultiHeadPointAttention(C, num_heads=H), _points(m)))],
    pnn.TemporalAttention: [("", lambda: (m := pnn.TemporalAttention(C, num_heads=H, k=3),
                                          _points(m, **_past())))],
    pnn.CrossModalAttention: [("", lambda: (m := pnn.CrossModalAttention(C, 4, num_heads=H),
                                            _points(m, **_tokens())))],
    pnn.AttentionBlock: [
        ("cbam", lambda: (m := pnn.AttentionBlock(pnn.CBAM(C, reduction=4, k=4)),
                          _points(m))),
        ("temporal", lambda: (m := pnn.AttentionBlock(pnn.TemporalAttention(
            C, num_heads=H, k=3)), _points(m, **_past())))],
    pnn.MultiBranchAttention: [
        (f, lambda f=f: (m := pnn.MultiBranchAttention(
            [pnn.ChannelGate(C, reduction=4), pnn.LocalGlobalAttention(
                C, num_heads=H, k=4, num_global=4),
             pnn.AttentionBlock(pnn.AxialAttention(C, num_heads=H, k=4))],
            num_heads=H, fusion=f), _points(m)))
        for f in ("laff", "linear")],
}

#: the dimensions of each kind (WeightKind's docstring); a table may be anything
NDIM = {WeightKind.NEIGHBOUR: 3, WeightKind.AXIS_TUBE: 3, WeightKind.AXIS: 2,
        WeightKind.TOKEN: 3, WeightKind.FUSION: 3, WeightKind.LEVELS: 4,
        WeightKind.CHANNEL_GATE: 2, WeightKind.POINT_GATE: 2, WeightKind.FULL: 4,
        WeightKind.TEMPORAL: 3, WeightKind.CROSS_MODAL: 3}


def test_every_module_of_the_package_has_a_case():
    assert {pnn.LocalAttention, pnn.AxialAttention, pnn.AttentionBlock} <= MODULES
    missing = sorted(c.__name__ for c in MODULES - set(CASES))
    assert not missing, f"add a case to CASES for {missing}"


@pytest.mark.parametrize("case", [(cls, cid, make) for cls, cases in CASES.items()
                                  for cid, make in cases],
                         ids=lambda c: f"{c[0].__name__}-{c[1]}".rstrip("-"))
def test_declared_kinds_are_the_returned_and_recorded_keys(case):
    cls, _, make = case
    torch.manual_seed(0)
    m, call = make()
    m.eval()
    assert isinstance(m, cls)
    with torch.no_grad():
        _, attn = call(return_attention=True)
    assert attn, "a module of pointsam.nn returns weights"
    assert set(attn) == set(m.weight_kinds), (sorted(attn), sorted(m.weight_kinds))
    for key, t in attn.items():
        kind = m.weight_kinds[key]
        assert isinstance(kind, WeightKind)
        if kind is not WeightKind.TABLE:
            assert t.is_floating_point() and t.dim() == NDIM[kind], (key, kind, t.shape)
        if kind is WeightKind.FUSION and "." not in key:  # its own, not a branch's
            names = m.branch_names
            assert not names or len(names) == t.size(-1), (names, t.shape)
    # the recorder carries every recording module's declarations
    with torch.no_grad(), record_attention(m) as rec:
        call()
    assert rec
    for name, d in rec.items():
        assert set(d) == set(rec.kinds[name]), (name, sorted(d), rec.kinds[name])
        for key in d:
            assert rec.kind(name, key) is rec.kinds[name][key]


def test_composites_declare_their_childrens_kinds_under_their_keys():
    mb = pnn.MultiBranchAttention([pnn.PointGate(C, k=4), pnn.AxialAttention(
        C, num_heads=H, k=4)], num_heads=H)
    assert mb.weight_kinds["branches.0.point"] is WeightKind.POINT_GATE
    assert mb.weight_kinds["branches.1.x"] is WeightKind.AXIS_TUBE
    assert mb.weight_kinds["a"] is WeightKind.FUSION
    assert mb.branch_names == ("PointGate", "AxialAttention")
    assert pnn.AxialAttention.branch_names == ("x", "y", "z")
    assert pnn.LocalGlobalAttention.branch_names == ("local", "global")
    lin = pnn.LocalGlobalAttention(C, num_heads=H, fusion="linear")
    assert "fusion" not in lin.weight_kinds and "fusion" in pnn.LocalGlobalAttention(
        C, num_heads=H).weight_kinds
    assert pnn.AttentionBlock(torch.nn.Linear(C, C), channels=C).weight_kinds == {}
