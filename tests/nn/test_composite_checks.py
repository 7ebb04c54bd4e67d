"""A composite module validates its input once, then runs its children, its
neighbour search and its fusion inside ``ops.trusted()`` (issue: AxialAttention
used to validate ``pos`` at every branch and every kNN)."""

import importlib

import pytest
import torch

from pointsam.nn import (
    AxialAttention,
    ChannelGate,
    LocalGlobalAttention,
    MultiBranchAttention,
    PointGate,
)

#: the modules that call check_pos by name (the package re-exports functions
#: named like its modules, so they are looked up by module path)
_MODULES = ["pointsam.ops", "pointsam.ops._validate", "pointsam.ops.knn",
            "pointsam.ops.fps", "pointsam.ops.grid"]


@pytest.fixture
def count_pos_checks(monkeypatch):
    calls = []
    mods = [importlib.import_module(m) for m in _MODULES]
    orig = mods[1].check_pos

    def counting(*a, **k):
        calls.append(1)
        return orig(*a, **k)

    for mod in mods:
        monkeypatch.setattr(mod, "check_pos", counting)
    return calls


@pytest.mark.parametrize("make", [
    lambda: AxialAttention(16, 16, k=8),
    lambda: LocalGlobalAttention(16, 16, k=8, num_global=16),
    lambda: MultiBranchAttention([ChannelGate(16, reduction=4), PointGate(16, k=8),
                                  AxialAttention(16, 16, k=8)], k=8),
])
def test_a_composite_checks_pos_once(make, count_pos_checks):
    m = make().eval()
    g = torch.Generator().manual_seed(0)
    x, pos = torch.randn(120, 16, generator=g), torch.randn(120, 3, generator=g)
    m(x, pos)
    assert len(count_pos_checks) == 1
    with pytest.raises(ValueError, match="NaN"):  # and the one check still checks
        m(x, torch.full((120, 3), float("nan")))
