import numpy as np
import pytest
import torch

from pointsam.viz import (
    VIRIDIS,
    Panel,
    bar_chart,
    read_png,
    render_attention,
    render_figure,
    render_views,
)
from pointsam.viz.colors import QUERY_COLOR, colormap

SIZE = (320, 240)


def _cloud(n: int = 400) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.6, 0.4])


def _assert_not_blank(img: np.ndarray) -> None:
    grey = img.astype(np.float64).mean(-1)
    background = (grey == 255).mean()
    assert 0.05 < 1 - background, "almost nothing was drawn"
    assert grey.std() > 20, f"pixel std {grey.std():.1f} is close to a blank image"


def _has_colour(img: np.ndarray, rgb, tol: int = 2) -> bool:
    target = np.round(np.asarray(rgb) * 255)
    return bool((np.abs(img.astype(int) - target).max(-1) <= tol).any())


def _has_any(img: np.ndarray, table: np.ndarray, tol: int = 2) -> bool:
    px = img.reshape(-1, 1, 3).astype(int)
    return bool((np.abs(px - np.round(table * 255)[None]).max(-1) <= tol).any())


@pytest.mark.parametrize("backend", ["open3d", "numpy"])
def test_headless_png_of_asked_size_not_blank(tmp_path, backend, request):
    if backend == "open3d":
        request.getfixturevalue("open3d_renderer")
    pos = _cloud()
    out = tmp_path / f"{backend}.png"
    img = render_attention(pos, pos[:, 0], out, size=SIZE, title="x weight",
                           views=("iso", "front", "top"), backend=backend)
    assert img.shape == (SIZE[1], SIZE[0], 3)
    back = read_png(out)
    assert back.shape == (SIZE[1], SIZE[0], 3)
    np.testing.assert_array_equal(back, img)
    _assert_not_blank(back)
    # colours are drawn exactly (no tone mapping): the views (left of the colour
    # bar, below the title) show colours of both ends of the map, as the
    # weights (x coordinate) span it
    views = back[22:200, :SIZE[0] - 80]
    assert _has_any(views, VIRIDIS[:40]) and _has_any(views, VIRIDIS[-40:])


@pytest.mark.parametrize("backend", ["open3d", "numpy"])
def test_views_differ_and_every_view_has_points(backend, request):
    if backend == "open3d":
        request.getfixturevalue("open3d_renderer")
    pos = _cloud().numpy()
    cols = np.tile([[0.1, 0.2, 0.9]], (len(pos), 1))
    tiles = render_views(pos, cols, views=("iso", "front", "top"), width=120,
                         height=90, backend=backend)
    assert [t.shape for t in tiles] == [(90, 120, 3)] * 3
    for t in tiles:
        assert (t != 255).any(axis=-1).mean() > 0.02
    assert not np.array_equal(tiles[1], tiles[2])


def test_open3d_and_numpy_use_the_same_camera(open3d_renderer):
    pos = _cloud().numpy()
    cols = np.zeros_like(pos)
    a, = render_views(pos, cols, views=("iso",), width=160, height=120,
                      backend="open3d")
    b, = render_views(pos, cols, views=("iso",), width=160, height=120,
                      backend="numpy")
    ca = np.argwhere(a.mean(-1) < 128).mean(0)
    cb = np.argwhere(b.mean(-1) < 128).mean(0)
    assert np.abs(ca - cb).max() < 3.0, (ca, cb)


def test_query_marker_and_grey_rest_are_drawn():
    pos = _cloud()
    w = torch.full((len(pos),), float("nan"))
    w[:20] = torch.linspace(0, 1, 20)
    img = render_attention(pos, w, query=0, size=SIZE, backend="numpy")
    views = img[:190, :SIZE[0] - 80]  # not the legend, not the colour bar
    assert _has_colour(views, QUERY_COLOR)       # the marked query
    assert _has_colour(views, (0.78, 0.78, 0.78))  # the rest, grey


def test_shared_scale_across_panels():
    pos = _cloud()
    lo = Panel(pos, values=torch.zeros(len(pos)), title="low")
    hi = Panel(pos, values=torch.ones(len(pos)), title="high")
    img = render_figure([lo, hi], size=(320, 320), views=("iso",), backend="numpy")
    top, bottom = img[:155, :240], img[165:, :240]  # left of the colour bar
    # with one scale the all-0 panel is the first colour, the all-1 the last
    assert _has_colour(top, VIRIDIS[0]) and not _has_colour(top, VIRIDIS[-1])
    assert _has_colour(bottom, VIRIDIS[-1]) and not _has_colour(bottom, VIRIDIS[0])
    # without sharing, each constant panel gets its own (centred) range
    img2 = render_figure([lo, hi], size=(320, 360), views=("iso",),
                         shared_scale=False, backend="numpy")
    assert not _has_colour(img2[:170, :240], VIRIDIS[0])


def test_bar_chart_heights_follow_the_weights(tmp_path):
    v = np.array([0.0, 0.25, 0.5, 1.0])
    img = bar_chart(v, 240, 160, out=tmp_path / "bars.png")
    assert img.shape == (160, 240, 3)
    np.testing.assert_array_equal(read_png(tmp_path / "bars.png"), img)
    # each bar has the colour of its weight and an area proportional to it
    area = [int((np.abs(img.astype(int) - np.round(colormap(np.array([w]), 0, 1)[0]
                                                    * 255)).max(-1) <= 1).sum())
            for w in v]
    assert area[0] == 0 < area[1]
    np.testing.assert_allclose([area[2] / area[1], area[3] / area[1]], [2, 4],
                               rtol=0.1)


def test_figure_formats_follow_the_file_name(tmp_path):
    pos = _cloud(100)
    render_attention(pos, pos[:, 0], tmp_path / "a.svg", size=(240, 160),
                     views=("iso",), backend="numpy")
    render_attention(pos, pos[:, 0], tmp_path / "a.pdf", size=(240, 160),
                     views=("iso",), backend="numpy")
    assert (tmp_path / "a.svg").read_text().lstrip().startswith("<?xml")
    assert b"<svg" in (tmp_path / "a.svg").read_bytes()[:2000]
    assert (tmp_path / "a.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match=r"must end in \.png, \.svg, \.pdf"):
        render_attention(pos, out=tmp_path / "a.gif", size=(240, 160),
                         backend="numpy")


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="\\[N, 3\\]"):
        render_attention(torch.zeros(5, 2), backend="numpy")
    with pytest.raises(ValueError, match="NaN or Inf"):
        render_attention(torch.full((5, 3), float("inf")), backend="numpy")
    with pytest.raises(ValueError, match="entries"):
        render_attention(torch.zeros(5, 3), torch.zeros(4), backend="numpy")
    with pytest.raises(ValueError, match="unknown view"):
        render_attention(torch.randn(5, 3), views=("diagonal",), backend="numpy")
    with pytest.raises(ValueError, match="backend"):
        render_attention(torch.randn(5, 3), backend="vtk")


def test_show_needs_a_display(monkeypatch):
    from pointsam.viz import has_display, show_window

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if has_display():  # macOS / Windows always have one
        pytest.skip("this platform always has a display")
    with pytest.raises(RuntimeError, match="no display"):
        show_window(torch.randn(10, 3), torch.rand(10))


def test_auto_backend_falls_back_with_a_warning(monkeypatch):
    import pointsam.viz.render as r

    monkeypatch.setattr(r, "_AVAILABLE", (False, "no renderer (simulated)"))
    monkeypatch.delenv("POINTSAM_VIZ_BACKEND", raising=False)
    with pytest.warns(RuntimeWarning, match="simulated"):
        img = render_attention(_cloud(), size=(160, 100), views=("iso",))
    assert img.shape == (100, 160, 3)
