"""BatchNorm folding for export: every Linear -> BatchNorm1d pair of the lite
models folds, the copy computes the same logits, the model itself is untouched."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pointsam.export import fold_batch_norms
from pointsam.models import create_model
from pointsam.models.dgcnn_layers import EdgeConv
from pointsam.nn import MLP, PointGate

LITE = ["pointnet2_lite_cls", "pointnet2_lite_partseg", "pointnet2_lite_semseg",
        "dgcnn_lite_cls", "dgcnn_lite_partseg", "dgcnn_lite_semseg", "dgcnn_cls"]


def _randomise_norms(model: nn.Module) -> int:
    """Non-trivial running statistics and affine parameters; returns the count."""
    g = torch.Generator().manual_seed(1)
    n = 0
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.rand(c, generator=g) - 0.5)
            n += 1
    return n


def _inputs(name: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    sizes = [300, 420]
    pos = torch.rand(sum(sizes), 3, generator=g) * 2 - 1
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor(sizes))
    out = {"pos": pos, "batch": batch}
    if "partseg" in name:
        out["category"] = torch.tensor([1, 4])
    return out


@pytest.mark.parametrize("name", LITE)
def test_every_norm_folds_and_logits_are_equal(name):
    torch.manual_seed(0)
    model = create_model(name, attention="cbam").eval()
    norms = _randomise_norms(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, count = fold_batch_norms(model)
    # every BatchNorm1d of these models follows a Linear directly, except the
    # point gate's, which normalises a neighbour mean of the kernel (not a Linear
    # output: it stays, an affine in eval)
    gates = sum(isinstance(m, PointGate) for m in model.modules())
    assert count == norms - gates > 0
    left = [m for m in folded.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(left) == gates and all(m.num_features == 1 for m in left)
    inp = _inputs(name)
    with torch.no_grad():
        ref, got = model(**inp), folded(**inp)
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < 1e-4 * max(1.0, float(ref.abs().max()))
    # the model itself is not changed
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(isinstance(m, nn.BatchNorm1d) for m in model.modules())


def test_edgeconv_first_layer_takes_the_folded_bias():
    torch.manual_seed(0)
    conv = EdgeConv(4, [8, 6]).eval()
    _randomise_norms(conv)
    x = torch.randn(30, 4)
    nbr = torch.randint(0, 30, (30, 5))
    folded, count = fold_batch_norms(conv)
    assert count == 2 and folded.lin.bias is not None and conv.lin.bias is None
    torch.testing.assert_close(folded(x, nbr), conv(x, nbr), atol=1e-5, rtol=1e-5)


def test_other_norms_and_non_adjacent_pairs_are_left_alone():
    torch.manual_seed(0)
    mlp = MLP([3, 8, 4], norm_layer=nn.LayerNorm)
    assert fold_batch_norms(mlp)[1] == 0
    seq = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.BatchNorm1d(5))  # not adjacent
    folded, count = fold_batch_norms(seq)
    assert count == 0 and isinstance(folded[2], nn.BatchNorm1d)
    # a BatchNorm without running statistics normalises by the batch: not foldable
    mlp = MLP([3, 8, 4], norm_layer=lambda c: nn.BatchNorm1d(
        c, track_running_stats=False)).eval()
    assert fold_batch_norms(mlp)[1] == 0
