"""Heads and the model adapters: input checks at the model's boundary, once."""

from __future__ import annotations

import sys

import pytest
import torch
from torch_geometric.data import Data

from pointsam import ops
from pointsam.models import create_model
from pointsam.nn import common
from tests.models._models_tiny import build_tiny as _build
from tests.models._models_tiny import ragged, tiny


def _spy(monkeypatch, fn):
    """Count the calls of ``fn`` through every pointsam module that binds it."""
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(args[1:2])
        return fn(*args, **kwargs)

    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("pointsam") \
                and getattr(mod, fn.__name__, None) is fn:
            monkeypatch.setattr(mod, fn.__name__, wrapper)
    return calls


@pytest.mark.parametrize("name", ["pointnet2_lite_cls", "dgcnn_lite_semseg",
                                  "pointnet2_lite_semseg"])
@pytest.mark.parametrize("attention", [None, "cbam", "local"])
def test_model_forward_validates_once_at_the_entry(monkeypatch, name, attention):
    m = create_model(name, num_classes=5, attention=attention, **tiny(name)).eval()
    pos, batch = ragged()
    pos_calls = _spy(monkeypatch, ops.check_pos)
    batch_calls = _spy(monkeypatch, ops.check_batch)
    module_calls = _spy(monkeypatch, common.check_inputs)
    with torch.no_grad():
        m(pos=pos, batch=batch)
    assert len(pos_calls) == 1 and len(batch_calls) == 1  # unpack, nothing below
    assert module_calls == []  # no attention module re-validates inside the model
    # forced on at every level (the old behaviour, kept for debugging and bench)
    with ops.validate_always(), torch.no_grad():
        m(pos=pos, batch=batch)
    assert len(pos_calls) > 2 and len(batch_calls) > 2
    if attention is not None:
        assert module_calls


def test_backbone_called_directly_is_a_boundary(monkeypatch):
    m = create_model("dgcnn_lite_cls", **tiny("dgcnn_lite_cls")).eval()
    pos, batch = ragged()
    calls = _spy(monkeypatch, ops.check_pos)
    with torch.no_grad():
        m.backbone(None, pos, batch)
    assert len(calls) == 1
    pos[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        m.backbone(None, pos, batch)


def test_entry_errors_unchanged():
    m = create_model("pointnet2_lite_cls", **tiny("pointnet2_lite_cls")).eval()
    pos, batch = ragged()
    with pytest.raises(ValueError, match="must be sorted"):
        m(pos=pos, batch=batch.flip(0))
    with pytest.raises(ValueError, match="batch has 5 entries"):
        m(pos=pos, batch=batch[:5])
    from torch_geometric.data import Batch

    data = Batch.from_data_list([Data(pos=pos[:9]), Data(pos=pos[9:])])
    data.batch = torch.zeros_like(data.batch).index_fill_(0, torch.tensor([20]), 2)
    data.batch[21:] = 2
    with pytest.raises(ValueError, match="batch_size=2 but batch holds cloud id 2"):
        m(data)


def test_partseg_needs_category():
    m = _build("pointnet2_lite_partseg").eval()
    pos, batch = ragged()
    with pytest.raises(ValueError, match="category"):
        m(pos=pos, batch=batch)
    with pytest.raises(ValueError, match=r"in \[0, 16\)"):
        m(pos=pos, batch=batch, category=torch.tensor([0, 1, 16]))
    with pytest.raises(ValueError, match="one per cloud"):
        m(pos=pos, batch=batch, category=torch.tensor([0, 1]))


def test_partseg_uses_the_category():
    m = _build("dgcnn_lite_partseg").eval()
    pos, batch = ragged()
    with torch.no_grad():
        a = m(pos=pos, batch=batch, category=torch.tensor([0, 1, 2]))
        b = m(pos=pos, batch=batch, category=torch.tensor([5, 1, 2]))
    first = batch == 0
    assert not torch.allclose(a[first], b[first])
    assert torch.allclose(a[~first], b[~first], atol=1e-5)


def test_features_required_when_in_channels():
    m = create_model("dgcnn_lite_cls", in_channels=3, **tiny("dgcnn_lite_cls")).eval()
    pos, batch = ragged()
    with pytest.raises(ValueError, match="in_channels=3"):
        m(pos=pos, batch=batch)
    with pytest.raises(ValueError, match="channels, expected 3"):
        m(pos=pos, batch=batch, x=torch.randn(pos.size(0), 4))
    assert m(pos=pos, batch=batch, x=torch.randn(pos.size(0), 3)).shape == (3, 10)


def test_bad_input_is_named():
    m = _build("pointnet2_lite_cls").eval()
    pos, batch = ragged()
    pos[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        m(pos=pos, batch=batch)
    with pytest.raises(ValueError, match="no pos"):
        m(Data(x=torch.randn(3, 3)))


def test_head_device_dtype_and_reset():
    from pointsam.models import ClsHead, SegHead

    h = SegHead(8, 3, hidden_channels=(4,), dtype=torch.float64).eval()
    assert {p.dtype for p in h.parameters()} == {torch.float64}
    assert h(torch.randn(5, 8, dtype=torch.float64)).dtype == torch.float64
    c = ClsHead(8, 3, hidden_channels=(4,))
    with torch.no_grad():
        for p in c.parameters():
            p.fill_(7.0)
    c.reset_parameters()
    assert all(not bool((p == 7.0).all()) for p in c.parameters())
    assert c.extra_repr() == "8, 3" and repr(c).startswith("ClsHead(\n  8, 3\n")


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_head_fused_equals_plain(dropout, monkeypatch):
    monkeypatch.setattr(common, "_BLOCK", 64 * 7)  # several blocks at one thread
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _head_fused_equals_plain(dropout)
    finally:
        torch.set_num_threads(threads)


def _head_fused_equals_plain(dropout):
    from pointsam.models import SegHead

    torch.manual_seed(0)
    head = SegHead(16, 5, hidden_channels=(32, 24), dropout=dropout)
    g = torch.Generator().manual_seed(1)
    for m in head.modules():  # non-trivial statistics, some negative scales
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.2)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
    head.eval()
    x = torch.randn(50, 16, generator=g)
    assert head.folded() is not None
    fused = head(x)
    head.fused = False
    torch.testing.assert_close(fused, head(x), rtol=1e-5, atol=1e-5)
    assert head.train().folded() is None  # batch statistics: the plain layers
