"""The interactive viewer: the scene it embeds, and the page in headless Chromium."""

import base64
import io
import json
import re

import numpy as np
import pytest
import torch
from torch import nn

import pointsam.nn as pnn
from pointsam.viz import build_scene, capture, capture_inputs, to_html
from pointsam.viz.chromium import Browser, find_chromium
from pointsam.viz.colors import VIRIDIS
from pointsam.viz.maps import LayerInputs


class Mix(nn.Module):
    """CBAM, local-global, axial and full attention on the same points."""

    def __init__(self, c: int = 16) -> None:
        super().__init__()
        self.lin = nn.Linear(3, c)
        self.cbam = pnn.CBAM(c, reduction=4, k=6)
        self.lg = pnn.LocalGlobalAttention(c, c, num_heads=2, k=6, num_global=8)
        self.axial = pnn.AxialAttention(c, c, num_heads=2, k=6)
        self.mhsa = pnn.MultiHeadPointAttention(c, num_heads=2)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        x = self.lin(pos)
        for m in (self.cbam, self.lg, self.axial, self.mhsa):
            x = m(x, pos)
        return x


@pytest.fixture(scope="module")
def run():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(60, 3, generator=g)
    model = Mix().eval()
    with torch.no_grad(), capture(model) as rec, capture_inputs(model) as inputs:
        model(pos)
    labels = (pos[:, 0] > 0).long()
    return pos, rec, inputs, labels


def _decode(o):
    a = np.frombuffer(base64.b64decode(o["b64"]), dtype=o["dtype"])
    return a.reshape(o["shape"])


def _scene_json(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="pointsam-scene">(.*?)</script>',
                  page, re.S)
    assert m, "the page embeds no scene"
    return json.loads(m.group(1))


def test_scene_has_every_kind_of_map(run):
    pos, rec, inputs, labels = run
    s = build_scene(rec, inputs, pos, labels=labels, pred=1 - labels,
                    class_names=["left", "right"])
    by = {(m["layer"], m["name"]): m for m in s.maps}
    kinds = {m["kind"] for m in s.maps}
    assert kinds == {"labels", "bars", "scalar", "click", "rgb"}
    assert by[("cbam.channel", "channel gate")]["bars"].shape == (16,)
    gate = by[("cbam.point", "point gate")]["values"]  # no heads: [1, N]
    np.testing.assert_allclose(gate[0], rec["cbam.point"]["point"][:, 0].numpy())
    laff = by[("lg.fuse", "LAFF weight of local")]["values"]  # mean, head 0, head 1
    a = rec["lg.fuse"]["a"][:, :, 0].numpy()  # [N, H]
    np.testing.assert_allclose(laff, np.concatenate([a.mean(1)[None], a.T]), rtol=1e-6)
    assert by[("axial", "axis weights (x,y,z = R,G,B)")]["rgb"].shape == (60, 3)
    clicks = {m["click"] for m in s.maps if m["kind"] == "click"}
    assert clicks == {"neighbour", "token", "row"}
    # a neighbour table: every stored row's weights (head mean) sum to 1
    t = by[("lg.local", "neighbours of the query (click)")]["table"]
    assert t["w"].shape == (3, 60, 6) and t["idx"].shape == (60, 6)
    np.testing.assert_allclose(t["w"][0].sum(1) / 65535, 1.0, atol=1e-3)
    np.testing.assert_array_equal(t["idx"], rec["lg.local"]["nbr_idx"].numpy())
    assert s.notes == []
    np.testing.assert_allclose(by[("input", "height (z)")]["values"][0],
                               pos[:, 2].numpy(), rtol=1e-6)
    # a model without attention: the page still shows the cloud, and says why
    empty = build_scene({}, {}, pos)
    assert [m["name"] for m in empty.maps] == ["height (z)"]
    assert empty.notes == ["no attention weights were recorded (a plain backbone?)"]


def test_display_subsample_and_click_budget_are_stated(run):
    pos, rec, inputs, _ = run
    s = build_scene(rec, inputs, pos, max_points=25, click_budget_mb=0.001)
    assert s.clouds[0]["pos"].shape == (25, 3) and s.clouds[0]["total"] == 60
    assert any("showing 25 of 60 points" in n for n in s.notes)
    assert any("click weights stored for" in n for n in s.notes)
    t = next(m["table"] for m in s.maps if m.get("click") == "neighbour")
    assert 0 < len(t["rows"]) < 25 and t["rows"].min() >= 0  # shown indices
    assert t["idx"].max() < 25  # neighbours point at shown points (-1: not shown)
    with pytest.raises(ValueError, match="max_points must be positive"):
        build_scene(rec, inputs, pos, max_points=0)
    with pytest.raises(ValueError, match="true labels have 3 entries for 60"):
        build_scene(rec, inputs, pos, labels=torch.zeros(3))


def test_page_is_one_offline_file(run, tmp_path):
    pos, rec, inputs, _ = run
    out = to_html(rec, pos, tmp_path / "v.html", inputs=inputs)
    page = out.read_text()
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="?https?:', page)
    assert "plotly.js" in page[:200_000]  # the library itself is inside
    scene = _scene_json(page)
    np.testing.assert_array_equal(_decode(scene["clouds"][0]["pos"]),
                                  pos.numpy().astype(np.float32))
    with pytest.raises(TypeError, match="a model, a capture record or a Scene"):
        to_html(42)
    with pytest.raises(ValueError, match="capture_inputs"):
        to_html(rec, pos)


# ---------------------------------------------------------------- in Chromium
needs_chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="headless Chromium not installed (apt-get install chromium; run.sh "
           "installs it when root with apt)")
READY = "window.pointsamViewer && pointsamViewer.ready"


def _png(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def _near(img: np.ndarray, rgb, tol: int = 12) -> np.ndarray:
    """Pixel coordinates (row, col) whose colour is within ``tol`` of ``rgb``."""
    return np.argwhere(np.abs(img - np.asarray(rgb)).max(-1) <= tol)


@needs_chromium
def test_two_known_points_show_their_colours_and_switch(tmp_path):
    pos = torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    rec = {"a": {"point": torch.tensor([[0.0], [1.0]])},
           "b": {"point": torch.tensor([[1.0], [0.0]])}}
    inputs = {k: LayerInputs(pos, None) for k in rec}
    page = to_html(rec, pos, tmp_path / "two.html", inputs=inputs, point_size=30)
    lo, hi = np.round(VIRIDIS[0] * 255), np.round(VIRIDIS[-1] * 255)
    with Browser(900, 600) as b:
        b.open(page, ready=READY, hash="map=0")
        a = _png(b.screenshot(tmp_path / "a.png"))
        # a real mouse click on the yellow point makes it the query
        y, x = _near(a[:, :800], hi).mean(0)
        drawn = b.eval("pointsamViewer.drawn")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            b.call("Input.dispatchMouseEvent", session=True, type=kind, x=float(x),
                   y=float(y), button="left", clickCount=int(kind != "mouseMoved"))
        b.wait_for(f"pointsamViewer.drawn > {drawn}")
        assert "point 1 of the input (1.000, 0.000, 0.000)" in b.eval(
            "document.querySelector('#info').textContent")
        assert "point gate here: 1.0000" in b.eval(
            "document.querySelector('#info').textContent")
        drawn = b.eval("pointsamViewer.drawn")
        b.eval("location.hash = 'map=1&query=1'")
        b.wait_for(f"pointsamViewer.drawn > {drawn} && pointsamViewer.state.map === 1")
        c = _png(b.screenshot(tmp_path / "b.png"))
        assert b.errors == []
    assert a.std() > 10, "blank screenshot"
    plot = (slice(None), slice(300, 800))  # right of the side panel, left of the bar
    pa_lo, pa_hi = _near(a[plot], lo), _near(a[plot], hi)
    pc_lo, pc_hi = _near(c[plot], lo), _near(c[plot], hi)
    assert min(len(pa_lo), len(pa_hi), len(pc_lo), len(pc_hi)) > 100, \
        (len(pa_lo), len(pa_hi), len(pc_lo), len(pc_hi))
    # the weights swapped between the maps: so did the points' colours
    np.testing.assert_allclose(pa_lo.mean(0), pc_hi.mean(0), atol=3)
    np.testing.assert_allclose(pa_hi.mean(0), pc_lo.mean(0), atol=3)
    assert np.abs(pa_lo.mean(0) - pa_hi.mean(0)).max() > 40  # two distinct places


@needs_chromium
def test_every_map_renders_without_errors_and_click_moves_the_query(run, tmp_path):
    pos, rec, inputs, labels = run
    page = to_html(rec, pos, tmp_path / "mix.html", inputs=inputs, labels=labels)
    with Browser(1000, 650) as b:
        b.open(page, ready=READY)
        n = b.eval("pointsamViewer.scene.maps.length")
        shots = set()
        for i in range(n):  # every map, through the page's own selector
            drawn = b.eval("pointsamViewer.drawn")
            b.eval(f"(() => {{ const s = document.querySelector('#map'); s.value = '{i}';"
                   " s.dispatchEvent(new Event('change')); })()")
            b.wait_for(f"pointsamViewer.drawn > {drawn} && "
                       f"location.hash.startsWith('#map={i}&')")
            shots.add(b.screenshot())
        assert b.errors == [], b.errors
        assert len(shots) == n  # each map looks different
        # a neighbour map follows the query: move it and the weights move
        nb = b.eval("pointsamViewer.scene.maps.findIndex(m => m.click === 'neighbour')")
        b.eval(f"location.hash = 'map={nb}&query=0'")
        b.wait_for("document.querySelector('#info').textContent.includes('point 0 ')")
        first = b.eval("document.querySelector('#info').textContent")
        b.eval(f"location.hash = 'map={nb}&query=7'")
        b.wait_for("document.querySelector('#info').textContent.includes('point 7 ')")
        second = b.eval("document.querySelector('#info').textContent")
        assert first != second and "6 points weighted" in second
        assert b.errors == [], b.errors
        assert not [c for c in b.console if "WARN" in c], b.console  # plotly's


def _jupyter_missing() -> str | None:
    import importlib.util

    for mod in ("nbconvert", "nbformat", "ipykernel"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (pip install -e '.[dev]')"
    return None


@pytest.mark.skipif(_jupyter_missing() is not None,
                    reason=str(_jupyter_missing()))
def test_show_displays_the_viewer_in_a_notebook(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(
        "import torch\n"
        "from pointsam.nn import PointGate\n"
        "from pointsam.viz import capture, capture_inputs, show\n"
        "gate, pos = PointGate(4, k=4), torch.randn(30, 3)\n"
        "with capture(gate) as rec, capture_inputs(gate) as inputs:\n"
        "    _ = gate(torch.randn(30, 4), pos)\n"
        "show(rec, pos, inputs=inputs, height=400)"))
    src = tmp_path / "viewer.ipynb"
    nbformat.write(nb, src)
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root), os.environ.get("PYTHONPATH", "")]),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    res = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--ExecutePreprocessor.timeout=120", "--output", "out.ipynb", str(src)],
        capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    outputs = out.cells[0].outputs
    assert [o.output_type for o in outputs] == ["display_data"], outputs
    frame = outputs[0].data["text/html"]
    assert "<iframe srcdoc=" in frame and "height:400px" in frame
    assert "pointsam-scene" in frame and "point gate" in frame
