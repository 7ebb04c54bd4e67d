"""Temporal weights drawn: the recorded past points, one panel per past scan,
and the viewer's click map with a marker per attended past point."""

import base64
import json
import re

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import pointsam.nn as pnn
from pointsam.viz import attention_maps, build_scene, capture, capture_inputs, to_html
from pointsam.viz.chromium import Browser, find_chromium

K, T = 4, 2


class TwoScans(nn.Module):
    """The newest scan (frame 0) attends to frames 1 and 2 of the same clouds."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.lin = nn.Linear(3, c)
        self.temporal = pnn.TemporalAttention(c, num_heads=2, k=K)

    def forward(self, pos: Tensor, batch: Tensor, frame: Tensor) -> Tensor:
        cur = frame == 0
        past = [frame == t for t in range(1, T + 1)]
        return self.temporal(self.lin(pos[cur]), pos[cur], batch[cur],
                             past_x=[self.lin(pos[m]) for m in past],
                             past_pos=[pos[m] for m in past],
                             past_batch=[batch[m] for m in past])


@pytest.fixture(scope="module")
def run():
    """Two clouds; cloud 0 has only 3 points (< k) in frame 2: masked columns."""
    g = torch.Generator().manual_seed(0)
    sizes = {(0, 0): 12, (0, 1): 9, (0, 2): 3, (1, 0): 14, (1, 1): 10, (1, 2): 11}
    pos, batch, frame = [], [], []
    for b in (0, 1):  # sorted batch; frames interleaved inside each cloud
        for t in (0, 1, 2):
            n = sizes[(b, t)]
            pos.append(torch.randn(n, 3, generator=g) + torch.tensor([0.5 * t, 0, 0]))
            batch.append(torch.full((n,), b))
            frame.append(torch.full((n,), t))
    pos, batch, frame = torch.cat(pos), torch.cat(batch), torch.cat(frame)
    torch.manual_seed(0)
    model = TwoScans().eval()
    with torch.no_grad(), capture(model) as rec, capture_inputs(model) as inputs:
        model(pos, batch, frame)
    return pos, batch, frame, rec, inputs


def _nearest_past(pos, batch, frame, i_cur):
    """Brute force: the k nearest points of each past frame, same cloud, sorted."""
    cur = (frame == 0).nonzero().flatten()
    i = cur[i_cur]
    out = []
    for t in range(1, T + 1):
        cand = ((frame == t) & (batch == batch[i])).nonzero().flatten()
        d = (pos[cand] - pos[i]).norm(dim=1)
        out.append(pos[cand[d.argsort()[:K]]])
    return out  # T x [min(k, n_t), 3]


def test_recorded_nbr_pos_are_the_k_nearest_past_points(run):
    pos, batch, frame, rec, _ = run
    d = rec["temporal"]
    n0 = int((frame == 0).sum())
    assert d["nbr_pos"].shape == (n0, T * K, 3) and d["nbr_mask"].shape == (n0, T * K)
    assert d["nbr_frame"].tolist() == [1] * K + [2] * K
    assert rec.kinds["temporal"]["nbr_pos"] is pnn.WeightKind.TABLE
    for i in range(n0):
        for t, ref in enumerate(_nearest_past(pos, batch, frame, i)):
            cols = slice(t * K, (t + 1) * K)
            mask = d["nbr_mask"][i, cols]
            assert int(mask.sum()) == len(ref)  # masked where the cloud has < k
            torch.testing.assert_close(d["nbr_pos"][i, cols][mask], ref)
    a = d["attn"]  # masked columns weigh 0, rows sum to 1
    assert float(a.masked_select(~d["nbr_mask"].unsqueeze(-1)).abs().max()) == 0.0
    torch.testing.assert_close(a.sum(1), torch.ones(n0, 2))


def test_picture_has_a_panel_per_past_scan_with_the_query_candidates(run):
    pos, batch, _, rec, inputs = run
    q = 3  # a point of the newest scan in cloud 0 (frame 0 comes first)
    maps = attention_maps(rec, inputs, pos, batch, query=q, cloud=0)
    (amap,) = [m for m in maps if m.layer == "temporal"]
    assert amap.kind == "temporal" and "over the 2 previous scans" in amap.title
    assert [p.title.split(":")[0] for p in amap.panels] == ["scan t-1", "scan t-2"]
    d, li = rec["temporal"], inputs["temporal"]
    qg = int(((li.pos - pos[q]) ** 2).sum(1).argmin())  # the query's row
    ref = _nearest_past(pos, batch, run[2], qg)
    for p, r in zip(amap.panels, ref):
        assert np.isnan(p.values).all()  # the current cloud in grey
        assert p.query is not None and len(p.markers) == len(r) == len(p.marker_colors)
        np.testing.assert_allclose(p.markers, r.numpy(), rtol=1e-6)
    # the candidates' weights (head mean) over every panel sum to 1
    w = amap.raw["weight"]
    assert len(w) == len(amap.raw_pos) == sum(len(p.markers) for p in amap.panels)
    np.testing.assert_allclose(w.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(w, d["attn"][qg].mean(-1)[d["nbr_mask"][qg]].numpy(),
                               rtol=1e-5)
    assert amap.vmin == 0.0 and amap.vmax == pytest.approx(w.max())
    assert sorted(set(amap.raw["scan"])) == [1.0, 2.0]


def _scene_json(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="pointsam-scene">(.*?)</script>',
                  page, re.S)
    assert m, "the page embeds no scene"
    return json.loads(m.group(1))


def _decode(o):
    a = np.frombuffer(base64.b64decode(o["b64"]), dtype=o["dtype"])
    return a.reshape(o["shape"])


def test_viewer_click_map_holds_each_rows_past_points(run, tmp_path):
    pos, batch, _, rec, inputs = run
    s = build_scene(rec, inputs, pos, batch, cloud=1)
    (m,) = [m for m in s.maps if m.get("click") == "temporal"]
    t, d = m["table"], rec["temporal"]
    rows_layer = (inputs["temporal"].batch == 1).nonzero().flatten()  # cloud 1's rows
    assert t["mpos"].shape == (len(rows_layer), T * K, 3) and t["mpos"].dtype == np.float32
    assert t["mscan"].tolist() == [1] * K + [2] * K
    for r, row in enumerate(t["rows"]):
        g = int(rows_layer[row])
        ok = d["nbr_mask"][g].numpy()
        np.testing.assert_allclose(t["mpos"][r][ok], d["nbr_pos"][g][ok].numpy(),
                                   rtol=1e-6)
        assert np.isnan(t["mpos"][r][~ok]).all()
        np.testing.assert_allclose(t["w"][0, r] / 65535, d["attn"][g].mean(-1).numpy(),
                                   atol=2e-5)  # the head mean, then each head
        np.testing.assert_allclose(t["w"][1:, r].T / 65535, d["attn"][g].numpy(),
                                   atol=2e-5)
    # the budget counts the positions: 12 bytes a column more than the weights
    row_bytes = T * K * 3 * 2 + T * K * 12
    small = build_scene(rec, inputs, pos, batch, cloud=1,
                        click_budget_mb=5 * row_bytes / 2**20)
    (sm,) = [m for m in small.maps if m.get("click") == "temporal"]
    assert len(sm["table"]["rows"]) == 5
    # the page: offline, with the map and its positions
    page = to_html(rec, pos, tmp_path / "t.html", inputs=inputs, batch=batch,
                   cloud=1).read_text()
    assert 'src="http' not in page
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="?https?:', page)
    (pm,) = [m for m in _scene_json(page)["maps"] if m.get("click") == "temporal"]
    np.testing.assert_array_equal(_decode(pm["table"]["mpos"]), t["mpos"])


@pytest.mark.skipif(find_chromium() is None, reason="headless Chromium not installed")
def test_the_page_draws_the_past_points_of_a_query(run, tmp_path):
    pos, batch, _, rec, inputs = run
    page = to_html(rec, pos, tmp_path / "t.html", inputs=inputs, batch=batch, cloud=1)
    with Browser(900, 600) as b:
        b.open(page, ready="window.pointsamViewer && pointsamViewer.ready")
        i = b.eval("pointsamViewer.scene.maps.findIndex(m => m.click === 'temporal')")
        b.eval(f"location.hash = 'map={i}&query=0'")
        b.wait_for(f"pointsamViewer.state.map === {i} && document.querySelector("
                   "'#info').textContent.includes('past points weighted')")
        info = b.eval("document.querySelector('#info').textContent")
        legend = b.eval("document.querySelector('#legend').textContent")
        assert b.errors == [], b.errors
    assert f"{T * K} past points weighted" in info and "scan t-2 (" in info
    assert "scan t-1: diamond" in legend and "scan t-2: square" in legend


@pytest.mark.parametrize("placement", ["coarse", "full"])
def test_both_placements_of_the_lidar_model_are_drawn(placement):
    from torch_geometric.data import Data

    from pointsam.models import create_model
    from pointsam.viz.gallery import run_model

    g = torch.Generator().manual_seed(0)
    pos = torch.cat([torch.rand(n, 3, generator=g) * torch.tensor([20.0, 20.0, 2.0]) - 10
                     for n in (90, 80, 70)])
    frame = torch.cat([torch.full((n,), t) for t, n in enumerate((90, 80, 70))])
    torch.manual_seed(0)
    m = create_model("pointnet2_lite_temporal_lidarseg", num_classes=3, num_past=2, k=4,
                     placement=placement).eval()
    _, _, rec, inputs = run_model(m, Data(pos=pos, frame=frame))
    maps = [a for a in attention_maps(rec, inputs, pos, query=0) if a.kind == "temporal"]
    assert len(maps) == 1 and len(maps[0].panels) == 2
    np.testing.assert_allclose(maps[0].raw["weight"].sum(), 1.0, atol=1e-5)
    s = build_scene(rec, inputs, pos)
    assert [m["click"] for m in s.maps if m["kind"] == "click"] == ["temporal"]
