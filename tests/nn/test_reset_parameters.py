"""``reset_parameters()`` re-initialises every child (STYLE.md section 5).

Every parameter is first overwritten with a constant; after
``m.reset_parameters()`` no weight or bias of a Linear / BatchNorm / LayerNorm
may still hold that constant (biases may come back as zeros, never as 0.123).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pointsam.nn as pnn
from pointsam.models import list_models
from tests.models._models_tiny import build_tiny

_FILL = 0.123
_CHECKED = (nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LayerNorm)


def _tiny_modules() -> dict[str, callable]:
    return {
        "MLP": lambda: pnn.MLP([3, 8, 4], norm_layer=nn.BatchNorm1d),
        "MLP_ln": lambda: pnn.MLP([3, 8, 4], norm_layer=nn.LayerNorm),
        "LAFF": lambda: pnn.LAFF([8, 8], 8, num_heads=2),
        "LAFFMultiLevel": lambda: pnn.LAFFMultiLevel([8, 16], 8, num_heads=2),
        "LocalAttention": lambda: pnn.LocalAttention(8, 8, num_heads=2, k=4),
        "LocalAttention_vector": lambda: pnn.LocalAttention(
            8, 8, num_heads=2, k=4, mode="vector"),
        "LocalAttention_seq_pos": lambda: pnn.LocalAttention(
            8, 8, num_heads=2, k=4,
            pos_nn=nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8))),
        "GlobalPooledAttention": lambda: pnn.GlobalPooledAttention(
            8, 8, num_heads=2, num_global=4),
        "LocalGlobalAttention": lambda: pnn.LocalGlobalAttention(
            8, 8, num_heads=2, k=4, num_global=4),
        "AxialAttention": lambda: pnn.AxialAttention(8, 8, num_heads=2, k=4),
        "ChannelGate": lambda: pnn.ChannelGate(8, 2),
        "PointGate": lambda: pnn.PointGate(8, 4, hidden_channels=4),
        "CBAM": lambda: pnn.CBAM(8, 2, 4, hidden_channels=4),
        "MultiHeadPointAttention": lambda: pnn.MultiHeadPointAttention(
            8, num_heads=2, max_points=64),
        "TemporalAttention": lambda: pnn.TemporalAttention(
            8, num_heads=2, k=4, num_frames=3),
        "CrossModalAttention": lambda: pnn.CrossModalAttention(8, 6, num_heads=2),
        "AttentionBlock": lambda: pnn.AttentionBlock(
            pnn.LocalAttention(8, 8, num_heads=2, k=4), layer_scale=0.5),
        "MultiBranchAttention": lambda: pnn.MultiBranchAttention(
            [pnn.LocalAttention(8, 8, num_heads=2, k=4), pnn.ChannelGate(8, 2)],
            num_heads=2),
    }


_MODULES = _tiny_modules()


def test_every_module_class_is_covered() -> None:
    classes = {getattr(pnn, n) for n in pnn.__all__}
    classes = {c for c in classes if isinstance(c, type) and issubclass(c, nn.Module)
               and c is not pnn.PointModule}
    built = {type(f()) for f in _MODULES.values()}
    assert classes <= built, sorted(c.__name__ for c in classes - built)


def _check_reset(m: nn.Module) -> None:
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(_FILL)
    m.reset_parameters()
    stale = [f"{mod_name}.{p_name}"
             for mod_name, mod in m.named_modules() if isinstance(mod, _CHECKED)
             for p_name, p in mod.named_parameters(recurse=False)
             if bool((p == _FILL).all())]
    assert not stale, f"not re-initialised: {stale}"


@pytest.mark.parametrize("name", sorted(_MODULES))
def test_module_reset_parameters(name: str) -> None:
    torch.manual_seed(0)
    _check_reset(_MODULES[name]())


@pytest.mark.parametrize("name", list_models())
def test_model_reset_parameters(name: str) -> None:
    torch.manual_seed(0)
    _check_reset(build_tiny(name))


def test_reset_keeps_special_inits() -> None:
    """A child's own ``reset_parameters`` is not undone by its parent's: DGCNN's
    spatial transform starts at T = I + 0, a temporal embedding at std 0.02."""
    dg = build_tiny("dgcnn_partseg")
    dg.reset_parameters()
    assert not dg.backbone.spatial_transform.transform.weight.any()
    tl = build_tiny("pointnet2_lite_temporal_lidarseg")
    tl.reset_parameters()
    ta = tl.temporal.attention  # the coarse placement's TemporalAttention
    assert float(ta.time_emb.weight.detach().std()) < 0.1
