r"""Seeing attention: capture, colour maps, headless rendering and PLY export.

.. code-block:: python

    from pointsam.viz import capture, render_attention
    with capture(model) as rec:          # every attention weight of one pass
        model(batch)
    render_attention(pos, rec["backbone.stages.0.attn"]["point"], "gate.png")

- :func:`capture` is :func:`pointsam.nn.base.record_attention`;
  :func:`capture_inputs` records the points each layer ran on.
- :mod:`pointsam.viz.kinds`: the one table from the kind each module declares
  for its weights to their picture (:func:`attention_maps`) and their viewer
  maps (:func:`build_scene`).
- :func:`render_attention` / :func:`render_figure` / :func:`bar_chart`: 3D views
  through Open3D's ``OffscreenRenderer`` (no display needed) or a NumPy
  fallback, composed with matplotlib (titles, colour bars with ticks, legends,
  layouts); PNG, or SVG/PDF when the file name says so.
- :func:`export_ply`: binary PLY with colours and the raw weights as
  properties; :func:`read_ply` reads it back.
- :func:`to_html`: the interactive viewer, one self-contained offline HTML
  file (plotly.js embedded): every captured map, heads, labels, click a point
  for its neighbours' weights; :func:`show` puts it inline in Jupyter.
- :func:`show_window`: an interactive Open3D window when a display is present.
- :func:`visualize` / :func:`write_demo_gallery`: every layer of a model on one
  cloud (what ``pointsam viz`` and ``pointsam demo`` write).

Open3D is imported only inside the functions that render or write images.
"""

from ..nn.base import record_attention as capture
from .colors import (
                     GREY,
                     PALETTE,
                     QUERY_COLOR,
                     VIRIDIS,
                     axis_colors,
                     colormap,
                     label_colors,
                     value_range,
)
from .export import export_ply, read_ply
from .figure import bar_chart, render_attention, render_figure
from .gallery import default_query, render_map, visualize, write_demo_gallery
from .html import show, to_html
from .image import read_png, write_png
from .maps import AttentionMap, attention_maps, capture_inputs, select_layers
from .render import (
                     VIEWS,
                     Panel,
                     has_display,
                     render_views,
                     renderer_available,
                     show_window,
)
from .scene import Scene, build_scene

__all__ = [
    "capture", "capture_inputs", "attention_maps", "AttentionMap", "select_layers",
    "render_attention", "render_figure", "render_views", "render_map", "Panel",
    "VIEWS", "renderer_available", "has_display", "show", "show_window", "to_html",
    "Scene", "build_scene",
    "export_ply", "read_ply", "write_png", "read_png", "bar_chart",
    "colormap", "value_range", "label_colors", "axis_colors", "VIRIDIS", "PALETTE",
    "GREY", "QUERY_COLOR", "visualize", "write_demo_gallery", "default_query",
]
