r"""The interactive viewer: one self-contained, offline HTML file.

:func:`to_html` writes a page that holds everything it needs: plotly.js
(embedded, no CDN), the viewer script and the scene (positions and every
captured map as base64 typed arrays). It opens from disk in any browser, with
no server and no network. :func:`show` puts the same page inline in a Jupyter
notebook (an ``<iframe srcdoc=...>``).

The page offers: a selector of every map (layer, weight; head where the
weights have heads; axis weights as RGB; LAFF fusion weights; channel gates as
a bar chart), true and predicted labels when known, a click on a point to make
it the query of the neighbour / axial-tube / global-token / attention-row maps
(the side panel lists its largest weights), and point size and colour map
controls. The URL hash holds the state (``#map=3&head=0&cmap=Viridis&size=3
&query=12``), so a link opens the same view; the page reads it at load and on
change.

Why plotly and not three.js: plotly.js ships inside the ``plotly`` Python
package (nothing to download or vendor), draws 3D scatters with WebGL
(a 120k-point LiDAR scan stays interactive), and brings colour bars with
ticks, bar charts, camera controls and click events that a three.js page would
have to build by hand. The cost is ~4.7 MB of JavaScript in every file.
"""

from __future__ import annotations

import base64
import html as _html
import json
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .scene import Scene, build_scene, scene_from_model

__all__ = ["to_html", "show", "scene_to_json"]


def _nd(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    dtype = {np.dtype(np.float32): "float32", np.dtype(np.uint16): "uint16",
             np.dtype(np.int32): "int32", np.dtype(np.uint8): "uint8"}.get(a.dtype)
    if dtype is None:
        raise TypeError(f"cannot embed an array of dtype {a.dtype}")
    return {"__nd__": True, "dtype": dtype, "shape": list(a.shape),
            "b64": base64.b64encode(a.astype(a.dtype.newbyteorder("<")).tobytes())
            .decode("ascii")}


def _q16(a: np.ndarray) -> dict[str, Any]:
    """Float values as uint16 codes over their finite range (65535 = NaN).

    The page decodes ``lo + code / 65534 * (hi - lo)``: a step of
    :math:`(hi - lo) / 65534`, finer than any colour map, at half the bytes.
    """
    finite = np.isfinite(a)
    lo = float(a[finite].min()) if finite.any() else 0.0
    hi = float(a[finite].max()) if finite.any() else 1.0
    span = hi - lo if hi > lo else 1.0
    q = np.where(finite, np.round((np.where(finite, a, lo) - lo) / span * 65534), 65535)
    return {"__q16__": _nd(q.astype(np.uint16)), "lo": lo, "hi": lo + span}


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return _q16(o) if o.dtype == np.float32 and o.ndim == 2 and o.shape[1] > 64 \
            else _nd(o)
    if isinstance(o, Mapping):
        return {str(k): _jsonable(v) for k, v in o.items() if k != "shown"}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, float)):
        return None if not math.isfinite(float(o)) else float(o)
    if isinstance(o, np.integer):
        return int(o)
    return o


def _point_size(n: int) -> float:
    """A default marker size (pixels) that keeps a cloud of ``n`` points readable."""
    return float(np.clip(round(2 * 14 / math.sqrt(max(n, 1)) ** 0.5, 1) / 2, 1.0, 10.0))


#: The colour maps the page offers (matplotlib's tables; the first is the default).
_CMAPS = ("viridis", "cividis", "plasma", "inferno", "magma", "turbo", "coolwarm",
          "gray", "gray_r")


def scene_to_json(scene: Scene, point_size: float | None = None) -> str:
    """The scene as the JSON text the page embeds (safe inside ``<script>``)."""
    n = len(scene.clouds[0]["pos"]) if scene.clouds else 0
    attn = [m for m in scene.maps if m["layer"] not in ("input", "labels")]
    first = next((m["id"] for m in attn if m["kind"] == "scalar"),
                 attn[0]["id"] if attn else 0)
    from .colors import cmap_table

    cmaps = {c: ["#" + "".join(f"{int(round(v * 255)):02x}" for v in row)
                 for row in cmap_table(c)] for c in _CMAPS}
    d = {"title": scene.title, "cmaps": cmaps, "clouds": scene.clouds, "maps": scene.maps,
         "class_names": scene.class_names, "notes": scene.notes,
         "query": scene.query, "default_map": first,
         "point_size": float(point_size) if point_size else _point_size(n)}
    return json.dumps(_jsonable(d), separators=(",", ":")).replace("</", "<\\/")


def _asset(name: str) -> str:
    return resources.files("pointsam.viz").joinpath("assets", name).read_text("utf-8")


def _plotlyjs() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:  # pragma: no cover
        raise ImportError("the HTML viewer embeds plotly.js from the plotly package: "
                          "pip install plotly") from None
    return get_plotlyjs()


def _scene(source: Any, data: Any, inputs: Any, kwargs: dict[str, Any]) -> Scene:
    from torch import nn

    if isinstance(source, Scene):
        if kwargs:
            raise TypeError(f"options {sorted(kwargs)} do not apply to a ready Scene")
        return source
    if isinstance(source, nn.Module):
        if data is None:
            raise ValueError("to_html(model, data): give the cloud (a PyG Data) to run "
                             "the model on")
        return scene_from_model(source, data, **kwargs)
    if isinstance(source, Mapping):
        if inputs is None or data is None:
            raise ValueError("to_html(record, pos_or_data, inputs=...): a captured "
                             "record needs its points and capture_inputs(model)")
        pos = getattr(data, "pos", data)
        return build_scene(source, inputs, pos, **kwargs)
    raise TypeError(f"to_html takes a model, a capture record or a Scene, not "
                    f"{type(source).__name__}")


def to_html(source: Any, data: Any = None, out: str | Path | None = None, *,
            inputs: Any = None, point_size: float | None = None,
            **kwargs: Any) -> str | Path:
    r"""Write the interactive viewer of one cloud's attention as one HTML file.

    Args:
        source: A model (run once on ``data`` under :func:`~pointsam.viz.capture`),
            a capture record (``capture(model)``; then ``inputs`` is
            ``capture_inputs(model)`` and ``data`` the points or ``Data``), or
            a ready :class:`~pointsam.viz.scene.Scene`.
        data: The cloud: a PyG ``Data`` (``pos``; ``y`` becomes the true
            labels) or, with a record, the positions ``[N, 3]``.
        out: The file to write; ``None`` returns the page as a string.
        inputs: ``capture_inputs(model)`` result, with a record.
        point_size: Initial marker size in pixels (default: from the size).
        **kwargs: Options of :func:`~pointsam.viz.scene.build_scene`:
            ``max_points`` (display subsample, off by default),
            ``click_budget_mb``, ``query``, ``labels``, ``pred``,
            ``class_names``, ``layers``, ``title``, ``cloud``.

    Returns:
        The path written, or the page.

    Example:
        >>> import torch
        >>> from pointsam.nn import PointGate
        >>> from pointsam.viz import capture, capture_inputs
        >>> gate, pos = PointGate(4, k=4), torch.randn(30, 3)
        >>> with capture(gate) as rec, capture_inputs(gate) as inputs:
        ...     _ = gate(torch.randn(30, 4), pos)
        >>> page = to_html(rec, pos, inputs=inputs)
        >>> page.startswith("<!DOCTYPE html>"), 'src="http' in page
        (True, False)
    """
    scene = _scene(source, data, inputs, kwargs)
    page = _asset("viewer.html")
    parts = {"{{TITLE}}": _html.escape(scene.title), "{{PLOTLYJS}}": _plotlyjs(),
             "{{SCENE}}": scene_to_json(scene, point_size),
             "{{VIEWERJS}}": _asset("viewer.js")}
    for k, v in parts.items():  # one pass each; the values never hold the keys
        head, _, tail = page.partition(k)
        page = head + v + tail
    if out is None:
        return page
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def show(source: Any, data: Any = None, *, height: int = 620, inputs: Any = None,
         point_size: float | None = None, **kwargs: Any) -> Any:
    """Show the viewer inline in a Jupyter notebook (the page of :func:`to_html`).

    The page goes into an ``<iframe srcdoc=...>``, so it needs no server, no
    file and no network, and it survives in the saved notebook.

    Args:
        source: As :func:`to_html` (a model, a capture record or a Scene).
        data: As :func:`to_html`.
        height: Height of the frame in pixels.
        inputs: As :func:`to_html`.
        point_size: As :func:`to_html`.
        **kwargs: As :func:`to_html`.

    Returns:
        ``None`` inside IPython (the frame is displayed); elsewhere the
        ``IPython.display.HTML`` object.
    """
    page = to_html(source, data, inputs=inputs, point_size=point_size, **kwargs)
    frame = (f'<div class="pointsam-viewer"><iframe '
             f'srcdoc="{_html.escape(str(page), quote=True)}" '
             f'style="width:100%;height:{int(height)}px;border:1px solid #ddd" '
             f'sandbox="allow-scripts"></iframe></div>')
    try:
        from IPython.display import HTML, display
    except ImportError:
        raise ImportError("show() displays in Jupyter (IPython); use "
                          "to_html(..., out='viewer.html') elsewhere") from None
    from IPython import get_ipython

    obj = HTML(frame)
    if get_ipython() is None:
        return obj
    display(obj)
    return None
