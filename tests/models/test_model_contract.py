"""Every registered model declares the contract of ``models/base.py``, and the
declared facts match what the model does."""

import pytest
import torch

from pointsam.models import PointModel, create_model, list_models
from pointsam.nn import MultiHeadPointAttention


@pytest.mark.parametrize("name", list_models())
def test_registered_models_declare_their_facts(name):
    m = create_model(name).eval()
    assert isinstance(m, PointModel)
    assert m.task in ("cls", "partseg", "semseg")
    assert (m.num_categories > 0) == (m.task == "partseg")
    assert m.min_points >= 1 and m.in_channels == 0 and m.num_classes > 1
    g = torch.Generator().manual_seed(0)
    sizes = (70, 90)
    pos = torch.rand(sum(sizes), 3, generator=g) * 4
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor(sizes))
    kw = {"category": torch.tensor([0, 1])} if m.task == "partseg" else {}
    if m.num_past:  # a multi-scan model refuses a single scan, naming num_past
        kw["frame"] = torch.zeros(len(pos), dtype=torch.long)
        with pytest.raises(ValueError, match=f"num_past={m.num_past}"):
            m(pos=pos, batch=batch, **kw)
        return
    with torch.no_grad():
        out = m(pos=pos, batch=batch, **kw)
    rows = 2 if m.task == "cls" else len(pos)
    assert out.shape == (rows, m.num_classes)
    assert m.per_point == (m.task != "cls")


def test_declared_in_channels_and_export_blockers():
    m = create_model("pointnet2_lite_cls", in_channels=3)
    assert m.in_channels == 3
    with pytest.raises(ValueError, match="in_channels=3"):
        m(pos=torch.rand(50, 3))
    assert m.export_blocker is None and m.end_to_end_blocker is None
    mh = create_model("pointnet2_lite_cls", attention="mhsa")
    assert "MultiHeadPointAttention cannot be exported" in mh.export_blocker
    assert MultiHeadPointAttention.export_blocker in mh.export_blocker
    lidar = create_model("pointnet2_lite_lidarseg")
    assert lidar.export_blocker is None and "height above" in lidar.end_to_end_blocker
    twin = create_model("pointnet2_lite_temporal_lidarseg", num_past=0)
    assert twin.export_blocker is None and twin.num_past == 0 and twin.reads_frame
    assert not lidar.reads_frame
