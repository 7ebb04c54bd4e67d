r"""Figures: 3D views from :mod:`~pointsam.viz.render` composed with matplotlib.

The 3D tiles come from Open3D's ``OffscreenRenderer`` (or the NumPy splatter);
everything 2D around them is matplotlib: the title, per-panel titles, the view
names, the query and token markers, a colour bar with ticks and a label, a
legend of swatches (classes, axes, markers) and bar charts of channel weights.

Only :class:`matplotlib.figure.Figure` with the Agg canvas is used (never
``pyplot``), so no window ever opens and no global state changes. The output
format follows the file name: ``.png`` (default), ``.svg`` or ``.pdf``; a PNG
holds exactly the pixels returned, so colours can be checked in tests.

Layout (pixels): a title strip on top, one row per panel (its title strip, then
one tile per view), a vertical colour bar on the right (one for the figure with
``shared_scale``, else one per row), and the legend at the bottom.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pointsam._atomic import atomic_write

from .colors import GREY, QUERY_COLOR, colormap, mpl_cmap, to_numpy, value_range
from .render import Panel, _camera, project, render_views

__all__ = ["render_figure", "render_attention", "bar_chart", "save_figure",
           "new_figure", "figure_to_array", "FORMATS"]

#: File suffixes a figure can be written as.
FORMATS = (".png", ".svg", ".pdf")
_DPI = 100
_INK = "#1e1e1e"


def new_figure(width: int, height: int, *, dpi: int = _DPI) -> Any:
    """A ``width`` x ``height`` pixel matplotlib figure on the Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def figure_to_array(fig: Any) -> np.ndarray:
    """Draw ``fig`` and return its pixels ``[H, W, 3]`` uint8."""
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    w = int(round(fig.get_figwidth() * _DPI))
    h = int(round(fig.get_figheight() * _DPI))
    if img.shape[:2] != (h, w):  # float rounding of the figure size: pad or crop
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        hh, ww = min(h, img.shape[0]), min(w, img.shape[1])
        out[:hh, :ww] = img[:hh, :ww]
        img = out
    return img


def save_figure(fig: Any, out: str | Path, img: np.ndarray | None = None) -> Path:
    """Write ``fig`` to ``out``: PNG (the exact pixels of ``img``), SVG or PDF.

    Raises:
        ValueError: the suffix is not one of :data:`FORMATS`.
    """
    path = Path(out)
    suffix = path.suffix.lower() or ".png"
    if suffix not in FORMATS:
        raise ValueError(f"cannot write a figure as {path.name!r}: the name must end "
                         f"in {', '.join(FORMATS)}")
    if not path.suffix:
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".png":
        from .image import write_png

        write_png(path, figure_to_array(fig) if img is None else img)
    else:
        with atomic_write(path) as f:  # a full disk keeps the previous file
            fig.savefig(f, format=suffix[1:], dpi=_DPI, facecolor="white")
    return path


def _px_axes(fig: Any, x: float, y: float, w: float, h: float) -> Any:
    """Axes at pixel box ``(x, y, w, h)``, y measured from the top."""
    fw, fh = fig.get_figwidth() * _DPI, fig.get_figheight() * _DPI
    return fig.add_axes((x / fw, 1 - (y + h) / fh, w / fw, h / fh))


def _legend_rows(items: Sequence[tuple[str, Any]], width: int, fontsize: float
                 ) -> tuple[int, int]:
    """``(columns, rows)`` of a swatch legend that fits ``width`` pixels."""
    item_w = max(len(n) for n, _ in items) * fontsize * 0.62 + 28
    ncol = max(1, min(len(items), int((width - 10) // item_w)))
    return ncol, -(-len(items) // ncol)


def tick_format(ticks: Sequence[float]) -> Any:
    r"""A tick label function with just enough digits to tell ``ticks`` apart.

    ``f"{v:.3g}"`` labels every tick of a saturated gate (0.99998 .. 1) as
    ``1``; here the number of decimals follows the tick step ``d``:
    ``max(0, ceil(-log10 d))`` (``%g`` above 1e5 or for steps below 1e-6).

    Example:
        >>> f = tick_format([0.99998, 0.99999, 1.0])
        >>> [f(v, None) for v in (0.99998, 0.99999, 1.0)]
        ['0.99998', '0.99999', '1.00000']
        >>> tick_format([0, 5, 10])(5, None)
        '5'
    """
    t = np.asarray(ticks, dtype=np.float64)
    steps = np.diff(np.unique(t))
    step = float(steps.min()) if steps.size else 1.0
    big = float(np.abs(t).max()) if t.size else 0.0
    if step <= 0 or step < 1e-6 or big >= 1e5:
        return lambda v, _: f"{v:.3g}"
    dec = max(0, int(np.ceil(-np.log10(step) - 1e-9)))
    return lambda v, _: f"{v:.{dec}f}"


def _colorbar_width(scale: tuple[float, float]) -> int:
    """Pixels for a colour bar whose tick labels have the digits they need."""
    from matplotlib.ticker import MaxNLocator

    ticks = MaxNLocator(nbins=8).tick_values(*scale)
    fmt = tick_format(ticks)
    chars = max(len(fmt(v, None)) for v in ticks)
    # bar 8 + 11 px, tick labels up to 6 px a character at 7 pt, the label 20 px
    return max(78, 8 + 11 + 4 + 6 * chars + 20)


def _colorbar(fig: Any, box: tuple[float, float, float, float], lo: float, hi: float,
              cmap: str, label: str) -> None:
    """A vertical colour bar with ticks and ``label`` in the pixel ``box``."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    cax = _px_axes(fig, *box)
    sm = ScalarMappable(norm=Normalize(lo, hi), cmap=mpl_cmap(cmap))
    cb = fig.colorbar(sm, cax=cax, orientation="vertical")
    cb.ax.tick_params(labelsize=7, length=2, pad=1, colors=_INK)
    locator = MaxNLocator(nbins=max(2, int(box[3] // 28)))
    cb.locator = locator
    cb.formatter = FuncFormatter(tick_format(locator.tick_values(lo, hi)))
    cb.update_ticks()
    cb.set_label(label, fontsize=8, labelpad=2, color=_INK)
    cb.outline.set_linewidth(0.5)


def render_figure(panels: Sequence[Panel], out: str | Path | None = None, *,
                  size: tuple[int, int] = (640, 240),
                  views: Sequence[str] = ("iso", "top"), title: str = "",
                  cmap: str = "viridis", vmin: float | None = None,
                  vmax: float | None = None, shared_scale: bool = True,
                  value_label: str = "weight", point_size: float | None = None,
                  up: str = "z", backend: str = "auto") -> np.ndarray:
    r"""Render panels (rows) x views (columns) with a colour bar and a legend.

    With ``shared_scale`` (default) every panel's weights use one
    ``(vmin, vmax)``, taken over all panels (:func:`~pointsam.viz.colors.value_range`)
    unless given, and one colour bar is drawn on the right; otherwise each row
    gets its own range and colour bar.

    Args:
        panels: The clouds to draw, one row each.
        out: File to write: ``.png``, ``.svg`` or ``.pdf`` (optional).
        size: ``(width, height)`` of the whole figure in pixels.
        views: Names from :data:`~pointsam.viz.render.VIEWS`, one column each.
        title: Text on top of the figure.
        cmap: Any matplotlib colour map name.
        vmin: Low end of the scale (default: the data minimum).
        vmax: High end of the scale (default: the data maximum).
        shared_scale: One scale for all panels.
        value_label: Label of the colour bar (what the weight is, and its unit).
        point_size: Point size in pixels (default: from the density).
        up: ``"z"`` or ``"y"``.
        backend: ``"auto"``, ``"open3d"`` or ``"numpy"``.

    Returns:
        The image ``[height, width, 3]`` uint8 (the PNG's pixels).
    """
    panels = list(panels)
    if not panels:
        raise ValueError("render_figure needs at least one panel")
    if not views:
        raise ValueError("render_figure needs at least one view")
    width, height = (int(s) for s in size)
    if width < 32 * len(views) + 40 or height < 64:
        raise ValueError(f"size {size} is too small for {len(views)} views")
    if out is not None and Path(out).suffix.lower() not in FORMATS + ("",):
        raise ValueError(f"cannot write a figure as {Path(out).name!r}: the name must "
                         f"end in {', '.join(FORMATS)}")
    with_values = [p for p in panels if p.values is not None]
    scale = value_range(*[p.values for p in with_values], vmin=vmin, vmax=vmax) \
        if with_values else None
    swatch_items: list[tuple[str, Any]] = []
    for p in panels:
        for name, rgb in p.legend:
            if name not in [s[0] for s in swatch_items]:
                swatch_items.append((name, rgb))
    if any(p.query is not None for p in panels):
        swatch_items.append(("query", QUERY_COLOR))
    if any(p.values is not None and np.isnan(p.values).any() for p in panels):
        swatch_items.append(("no weight", GREY))
    pad, fs = 2, 8
    title_h = 22 if title else 0
    ptitle_h = 15 if any(p.title for p in panels) else 0
    cbar_w = _colorbar_width(scale) if scale is not None else 0
    legend_h = 0
    if swatch_items:
        ncol, nrow = _legend_rows(swatch_items, width, fs)
        legend_h = 6 + 15 * nrow
    tile_w = (width - cbar_w - pad * (len(views) - 1)) // len(views)
    row_h = (height - title_h - legend_h - pad * (len(panels) - 1)) // len(panels)
    tile_h = row_h - ptitle_h
    if tile_h < 24 or tile_w < 24:
        raise ValueError(f"size {size} is too small for {len(panels)} panels of "
                         f"{len(views)} views")
    fig = new_figure(width, height)
    if title:
        fig.text(0.5, 1 - (title_h / 2) / height, title, ha="center", va="center",
                 fontsize=10, color=_INK, weight="bold")
    y = title_h
    for p in panels:
        lo, hi = (scale if shared_scale or p.values is None
                  else value_range(p.values, vmin=vmin, vmax=vmax)) \
            if scale is not None else (0.0, 1.0)
        emphasis = None
        if p.values is not None:
            cols = colormap(p.values, lo, hi, cmap=cmap)
            nan = np.isnan(p.values)
            emphasis = ~nan if nan.any() else None
        elif p.colors is not None:
            cols = p.colors
        else:
            cols = np.tile(GREY, (len(p.pos), 1))
        markers, mcols = [], []
        if p.markers is not None and len(p.markers):
            markers.append(p.markers)
            mcols.append(np.tile(QUERY_COLOR, (len(p.markers), 1))
                         if p.marker_colors is None
                         else to_numpy(p.marker_colors, np.float64).reshape(-1, 3))
        if p.query is not None:
            markers.append(p.pos[int(p.query)][None])
            mcols.append(np.asarray([QUERY_COLOR]))
        tiles = render_views(p.pos, cols, views=views, width=tile_w, height=tile_h,
                             point_size=point_size, emphasis=emphasis, up=up,
                             backend=backend, focus=p.focus)
        if ptitle_h:
            fig.text((width - cbar_w) / 2 / width, 1 - (y + ptitle_h / 2) / height,
                     p.title, ha="center", va="center", fontsize=9, color=_INK)
        x = 0
        for v, tile in zip(views, tiles):
            ax = _px_axes(fig, x, y + ptitle_h, tile_w, tile_h)
            ax.imshow(tile, interpolation="none", extent=(0, tile_w, tile_h, 0))
            ax.set_xlim(0, tile_w)
            ax.set_ylim(tile_h, 0)
            ax.set_axis_off()
            ax.text(3, 3, v, ha="left", va="top", fontsize=7, color="#777777")
            if markers:
                eye, centre, upv = _camera(p.pos, v, up, tile_w / tile_h, p.focus)
                m = np.concatenate(markers)
                px, py, z = project(m, eye, centre, upv, tile_w, tile_h)
                ok = z > 0
                ax.scatter(px[ok], py[ok], s=28, c=np.clip(np.concatenate(mcols)[ok],
                                                           0, 1),
                           edgecolors=_INK, linewidths=0.8, zorder=3)
            x += tile_w + pad
        if scale is not None and not shared_scale and p.values is not None:
            _colorbar(fig, (width - cbar_w + 8, y + ptitle_h + 4, 11, tile_h - 8),
                      lo, hi, cmap, value_label)
        y += row_h + pad
    if scale is not None and shared_scale:
        top, bottom = title_h + ptitle_h + 4, height - legend_h - 6
        _colorbar(fig, (width - cbar_w + 8, top, 11, max(bottom - top, 20)),
                  *scale, cmap, value_label)
    if swatch_items:
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=np.clip(np.asarray(rgb, float), 0, 1),
                         edgecolor=_INK, linewidth=0.4, label=name)
                   for name, rgb in swatch_items]
        fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=fs,
                   frameon=False, bbox_to_anchor=(0.5, 0.0), handlelength=1.0,
                   handleheight=0.9, columnspacing=1.2, borderaxespad=0.2,
                   labelspacing=0.25, handletextpad=0.4)
    img = figure_to_array(fig)
    if out is not None:
        save_figure(fig, out, img)
    return img


def render_attention(pos: Any, weight: Any = None, out: str | Path | None = None, *,
                     colors: Any = None, labels: Any = None, query: int | None = None,
                     markers: Any = None, title: str = "",
                     size: tuple[int, int] = (640, 240),
                     views: Sequence[str] = ("iso", "top"), cmap: str = "viridis",
                     vmin: float | None = None, vmax: float | None = None,
                     value_label: str = "weight", point_size: float | None = None,
                     up: str = "z", backend: str = "auto") -> np.ndarray:
    r"""Render per-point attention weights of one cloud to a figure (headless).

    The weight :math:`w_i` of point :math:`i` is drawn with a colour map
    (viridis by default) over ``[vmin, vmax]``, with a labelled colour bar;
    ``NaN`` weights are grey (points outside a query's neighbourhood). Instead
    of weights, ``colors`` ``[N, 3]`` or integer ``labels`` ``[N]`` may be given.

    Args:
        pos: Points ``[N, 3]`` (tensor or array).
        weight: Per-point weights ``[N]`` or ``[N, 1]``.
        out: File to write (``.png``, ``.svg`` or ``.pdf``; optional).
        colors: RGB ``[N, 3]`` in :math:`[0, 1]`, used when ``weight`` is None.
        labels: Class ids ``[N]``, used when ``weight`` and ``colors`` are None.
        query: A point to mark.
        markers: Extra positions ``[Q, 3]`` to mark.
        title: Text on top.
        size: ``(width, height)`` in pixels.
        views: Views side by side (:data:`~pointsam.viz.render.VIEWS`).
        cmap: Any matplotlib colour map name.
        vmin: Low end of the scale (default: the minimum weight).
        vmax: High end of the scale (default: the maximum weight).
        value_label: Label of the colour bar.
        point_size: Point size in pixels (default: from the density).
        up: ``"z"`` or ``"y"``.
        backend: ``"auto"``, ``"open3d"`` or ``"numpy"``.

    Shapes:
        - **input:** pos :math:`(N, 3)`, weight :math:`(N)`
        - **output:** :math:`(H, W, 3)` uint8, ``(W, H) = size``

    Example:
        >>> import torch
        >>> pos = torch.randn(200, 3)
        >>> img = render_attention(pos, pos[:, 0], size=(240, 120), backend="numpy")
        >>> img.shape
        (120, 240, 3)
    """
    from .colors import PALETTE, label_colors

    legend: list[tuple[str, Sequence[float]]] = []
    if weight is None and colors is None and labels is not None:
        lab = to_numpy(labels).reshape(-1).astype(np.int64)
        colors = label_colors(lab)
        legend = [(str(int(c)), PALETTE[int(c) % len(PALETTE)])
                  for c in np.unique(lab)]
    panel = Panel(pos, values=weight, colors=colors if weight is None else None,
                  query=query, markers=markers, legend=legend)
    return render_figure([panel], out, size=size, views=views, title=title, cmap=cmap,
                         vmin=vmin, vmax=vmax, value_label=value_label,
                         point_size=point_size, up=up, backend=backend)


def bar_chart(values: object, width: int = 320, height: int = 160, *,
              vmin: float = 0.0, vmax: float = 1.0, title: str = "",
              cmap: str = "viridis", labels: Sequence[str] | None = None,
              value_label: str = "weight", xlabel: str = "channel",
              out: str | Path | None = None) -> np.ndarray:
    r"""A matplotlib bar chart, bars coloured by value (per-channel gates).

    Bar :math:`c` has height :math:`w_c` on a y axis from ``vmin`` to ``vmax``
    and the colour of :math:`w_c` in ``cmap``, so a bar chart and the point
    renders next to it share one scale.

    Args:
        values: Weights ``[C]``.
        width: Image width in pixels.
        height: Image height in pixels.
        vmin: Value at the x axis. (default: 0)
        vmax: Value at the top of the y axis. (default: 1, a sigmoid gate's range)
        title: Text above the plot.
        cmap: Colour map of the bars.
        labels: Optional name per bar (otherwise channel indices are ticked).
        value_label: The y axis label.
        xlabel: The x axis label.
        out: File to write (``.png``, ``.svg`` or ``.pdf``; optional).

    Shapes:
        - **input:** :math:`(C)`
        - **output:** :math:`(height, width, 3)` uint8

    Example:
        >>> bar_chart(np.linspace(0, 1, 32), 200, 100).shape
        (100, 200, 3)
    """
    v = to_numpy(values, np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("bar_chart needs at least one value")
    if not vmax > vmin:
        raise ValueError(f"vmax ({vmax}) must be above vmin ({vmin})")
    if width < 80 or height < 60:
        raise ValueError(f"a {width}x{height} bar chart is too small")
    fig = new_figure(width, height)
    top = 22 if title else 8
    left, bottom, right = 46, 30, 8
    ax = _px_axes(fig, left, top, width - left - right, height - top - bottom)
    cols = colormap(v, vmin, vmax, cmap=cmap)
    ax.bar(np.arange(v.size), np.nan_to_num(v, nan=vmin) - vmin, bottom=vmin,
           width=0.85 if v.size < 64 else 1.0, color=cols, linewidth=0,
           antialiased=False)
    ax.set_xlim(-0.6, v.size - 0.4)
    ax.set_ylim(vmin, vmax)
    ax.tick_params(labelsize=7, length=2, pad=1, colors=_INK)
    if labels is not None and len(labels) == v.size:
        ax.set_xticks(np.arange(v.size), list(labels),
                      rotation=90 if v.size > 8 else 0)
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    ax.set_xlabel(xlabel, fontsize=8, labelpad=1, color=_INK)
    ax.set_ylabel(value_label, fontsize=8, labelpad=2, color=_INK)
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    if title:
        fig.text(0.5, 1 - 11 / height, title, ha="center", va="center", fontsize=9,
                 color=_INK, weight="bold")
    img = figure_to_array(fig)
    if out is not None:
        save_figure(fig, out, img)
    return img
