import numpy as np
import pytest
import torch
from torch import nn

import pointsam.nn as pnn
from pointsam.nn.base import PointModule, record_attention
from pointsam.viz import attention_maps, capture, capture_inputs, select_layers


class Zoo(nn.Module):
    """One of each attention module, run one after the other on the same points."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.lin = nn.Linear(3, c)
        self.cbam = pnn.CBAM(c, reduction=4, k=6)
        self.local = pnn.LocalAttention(c, c, num_heads=2, k=6)
        self.glob = pnn.GlobalPooledAttention(c, c, num_heads=2, num_global=8)
        self.lg = pnn.LocalGlobalAttention(c, c, num_heads=2, k=6, num_global=8)
        self.axial = pnn.AxialAttention(c, c, num_heads=2, k=6)
        self.mhsa = pnn.MultiHeadPointAttention(c, num_heads=2)

    def forward(self, pos: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        x = self.lin(pos)
        for m in (self.cbam, self.local, self.glob, self.lg, self.axial, self.mhsa):
            x = m(x, pos, batch)
        return x


@pytest.fixture
def run():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(50, 3, generator=g)
    batch = torch.tensor([0] * 20 + [1] * 30)
    model = Zoo().eval()
    with torch.no_grad(), capture(model) as rec, capture_inputs(model) as inputs:
        model(pos, batch)
    return model, pos, batch, rec, inputs


def test_capture_is_record_attention():
    assert capture is record_attention


def test_capture_returns_every_attention_module_with_documented_shapes(run):
    model, pos, batch, rec, _ = run
    expected = {n for n, m in model.named_modules() if isinstance(m, PointModule)}
    assert expected - {""} <= set(rec), sorted(expected - set(rec))
    n, b, h, k = 50, 2, 2, 6
    assert rec["cbam"]["channel"].shape == (b, 16)
    assert rec["cbam"]["point"].shape == (n, 1)
    assert rec["cbam.channel"]["channel"].shape == (b, 16)
    assert rec["local"]["attn"].shape == (n, k, h)
    assert rec["local"]["nbr_idx"].shape == (n, k)
    assert rec["glob"]["attn"].shape == (n, 8, h)
    assert rec["glob"]["centres"].shape == (16, 3)  # 8 tokens per cloud, 2 clouds
    assert rec["lg"]["fusion"].shape == (n, h, 2)
    assert rec["axial"]["axis"].shape == (n, 3)
    assert rec["mhsa"]["attn"].shape == (b, h, 30, 30)
    # weights are probabilities where the docs say so
    torch.testing.assert_close(rec["local"]["attn"].sum(1), torch.ones(n, h))
    torch.testing.assert_close(rec["axial"]["axis"].sum(1), torch.ones(n))
    assert ((rec["cbam"]["point"] > 0) & (rec["cbam"]["point"] < 1)).all()
    # the recorded inputs are the points each layer ran on
    assert set(run[4]) >= {"cbam", "local", "glob", "lg", "axial", "mhsa"}


def test_maps_of_every_kind_stay_in_their_cloud(run):
    model, pos, batch, rec, inputs = run
    q = 25  # in cloud 1
    maps = attention_maps(rec, inputs, pos, batch, query=q, cloud=1)
    kinds = {(m.layer, m.kind) for m in maps}
    for want in [("cbam", "channel"), ("cbam", "point"), ("local", "neighbour"),
                 ("glob", "token"), ("lg.fuse", "branch"), ("axial", "axis"),
                 ("mhsa", "row")]:
        assert want in kinds or (want[0] == "cbam" and ("cbam.point", want[1])
                                 in kinds or ("cbam.channel", want[1]) in kinds), want
    cloud1 = pos[batch == 1].numpy()
    for m in maps:
        for p in m.panels:
            assert len(p.pos) == 30
            np.testing.assert_allclose(np.sort(p.pos, 0), np.sort(cloud1, 0))
    # no layer is drawn twice (composites repeat their children's weights)
    slugs = [m.slug for m in maps]
    assert len(slugs) == len(set(slugs))


def test_neighbour_map_equals_the_query_row(run):
    model, pos, batch, rec, inputs = run
    q = 3
    (m,) = [m for m in attention_maps(rec, inputs, pos, batch, query=q, cloud=0)
            if m.layer == "local"]
    vals = m.panels[0].values  # [20], NaN outside the neighbourhood
    nbr = rec["local"]["nbr_idx"][q].numpy()
    # head mean in float64, as attention_maps takes it: a float32 mean over the
    # heads rounds by up to ~1 float32 ulp, more than assert_allclose's rtol=1e-7
    w = rec["local"]["attn"][q].double().mean(-1).numpy()
    expect = np.full(20, np.nan)
    expect[np.unique(nbr)] = 0
    np.add.at(expect, nbr, w)
    np.testing.assert_allclose(vals, expect)
    assert np.nansum(vals) == pytest.approx(1.0, abs=1e-5)
    assert m.panels[0].query == q


def test_subsampled_layers_are_drawn_at_their_own_points():
    from torch_geometric.data import Batch, Data

    from pointsam.models import create_model

    model = create_model("pointnet2_lite_cls", num_classes=4, attention="cbam").eval()
    pos = torch.randn(512, 3)
    data = Batch.from_data_list([Data(pos=pos)])
    with torch.no_grad(), capture(model) as rec, capture_inputs(model) as inputs:
        model(data)
    maps = [m for m in attention_maps(rec, inputs, pos, None) if m.kind == "point"]
    assert len(maps) >= 2
    sizes = sorted({len(m.panels[0].pos) for m in maps})
    assert len(sizes) >= 2 and max(sizes) < 512  # each stage runs on its centres
    for m in maps:
        assert len(m.panels[0].values) == len(m.panels[0].pos)
        c = torch.from_numpy(m.panels[0].pos).float()
        d = (c[:, None] - pos[None]).norm(dim=-1)  # [S, N], exact (no cdist trick)
        assert d.min(1).values.max() < 1e-5  # FPS centres are input points


def test_layer_selection_by_name():
    names = ["a.attn", "a.attn.local", "a.attn.glob", "b.attn"]
    assert select_layers(names, "a.attn") == names[:3]
    assert select_layers(names, "*.glob") == ["a.attn.glob"]
    assert select_layers(names, None) == names
    with pytest.raises(ValueError, match="recorded layers: 'a.attn'"):
        select_layers(names, "c")


def test_token_map_gives_each_point_its_tokens_weight(run):
    model, pos, batch, rec, inputs = run
    q = 30  # cloud 1: tokens 8..15 of the centres
    (m,) = [m for m in attention_maps(rec, inputs, pos, batch, query=q, cloud=1)
            if m.layer == "glob"]
    cen = rec["glob"]["centres"][8:16].double()  # [8, 3]
    wq = rec["glob"]["attn"][q].mean(-1).double()  # [8]
    p1 = pos[batch == 1].double()
    nearest = torch.cdist(p1, cen).argmin(1)  # [30]
    np.testing.assert_allclose(m.panels[0].values, wq[nearest].numpy(), atol=1e-6)
    np.testing.assert_allclose(m.panels[0].markers, cen.numpy(), atol=1e-6)


def test_branch_map_sums_to_one_over_branches(run):
    model, pos, batch, rec, inputs = run
    (m,) = [m for m in attention_maps(rec, inputs, pos, batch, query=0, cloud=0)
            if m.layer == "lg.fuse"]
    assert [p.title for p in m.panels] == ["local", "global"]
    total = m.panels[0].values + m.panels[1].values
    np.testing.assert_allclose(total, np.ones(20), atol=1e-5)
