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

from pointsam._atomic import atomic_write

from .scene import DEFAULT_MAX_POINTS, Scene, build_scene, per_point, scene_from_model

__all__ = ["to_html", "show", "scene_to_json", "viewer_memory",
           "check_viewer_memory", "available_memory"]


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


#: Bytes per input point of the model's forward pass under the recorder, on
#: top of the recorded weights (activations, neighbour tables, the scene's
#: positions), and peak bytes per recorded byte (the weights, and the
#: unchunked computation that makes them): fitted to ``pointnet2_lite_semseg``
#: at 100k points (none/cbam/local/local_global/axial: 0.85/1.05/2.2/11.8/3.0
#: KB a point measured, 1.2/1.2/2.0/12.9/3.9 estimated).
_RUN_BYTES, _RECORD_FACTOR = 1200, 4
#: Peak bytes per *shown* point of the scene, the JSON and the page: measured
#: 0.6 KB (local_global, 300k shown: scene 50 MB, page 172 MB at peak, of which
#: ~90 MB do not depend on the size), doubled.
_SHOWN_BYTES = 1024
#: Points of the probe forward pass that measures the recorded bytes a point.
_PROBE_POINTS = 8192


def available_memory() -> int | None:
    """Bytes of memory the machine can still give: ``MemAvailable`` of
    ``/proc/meminfo``, else the available pages of ``os.sysconf``; ``None``
    when neither is known."""
    import os

    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def viewer_memory(model: Any, data: Any,
                  max_points: int | None = DEFAULT_MAX_POINTS) -> int:
    r"""Estimated peak bytes of :func:`scene_from_model` and the page on ``data``.

    .. math::
        m \, (R + F r) + S m,\qquad m = \min(n, M)

    for :math:`n` input points and :math:`M` = ``max_points`` (the model runs on
    the :math:`m` shown points, :func:`~pointsam.viz.scene.scene_from_model`,
    so the estimate stops growing at the budget): the forward
    pass under the recorder costs :math:`R` = 1200 bytes a point plus
    :math:`F` = 4 times the :math:`r` bytes a point that the model records
    (measured by a forward pass on a random subset of 8192 points: 0 for a
    plain backbone, ~2.9 KB for ``local_global``); the scene, the JSON and
    the page cost :math:`S` = 1024 bytes a shown point. The constants were
    measured on ``pointnet2_lite_semseg`` (``bench/viewer_memory.py``); the
    estimate is within ~25% of the measured peak for every attention kind.
    """
    import torch
    from torch import Tensor

    from .gallery import run_model

    n = data.pos.size(0)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(n, generator=g)[:_PROBE_POINTS].sort().values  # [P]
    _, _, rec, _ = run_model(model, per_point(data, idx))
    seen = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes()
            for d in rec.values() for t in d.values() if isinstance(t, Tensor)}
    rec_bytes = sum(seen.values()) / len(idx)  # recorded bytes a point
    shown = n if max_points is None else min(n, max_points)
    return int(shown * (_RUN_BYTES + _RECORD_FACTOR * rec_bytes + _SHOWN_BYTES))


def _size(b: int) -> str:
    return f"{b / 2**30:.1f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"


def check_viewer_memory(model: Any, data: Any,
                        max_points: int | None = DEFAULT_MAX_POINTS) -> None:
    """Refuse (``ValueError``, with the memory it would need) a viewer of
    ``data`` that the machine has no memory for (:func:`viewer_memory` against
    :func:`available_memory`). A cloud of at most 8192 points is not checked."""
    n = data.pos.size(0)
    if n <= _PROBE_POINTS:
        return
    avail = available_memory()
    if avail is None:
        return
    need = viewer_memory(model, data, max_points)
    if need > avail:
        shown = n if max_points is None else min(n, max_points)
        raise ValueError(
            f"the viewer of {n:,} points ({shown:,} shown) would need about "
            f"{_size(need)} of memory, and {_size(avail)} is "
            "available: show fewer points (max_points; pointsam viz "
            "--html-max-points N) or run the model on fewer (pointsam viz "
            "--num-points N)")


def _scene(source: Any, data: Any, inputs: Any, kwargs: dict[str, Any]) -> Scene:
    from torch import nn

    check = kwargs.pop("check_memory", True)
    if isinstance(source, Scene):
        if kwargs:
            raise TypeError(f"options {sorted(kwargs)} do not apply to a ready Scene")
        return source
    if isinstance(source, nn.Module):
        if data is None:
            raise ValueError("to_html(model, data): give the cloud (a PyG Data) to run "
                             "the model on")
        if check:
            check_viewer_memory(source, data,
                                kwargs.get("max_points", DEFAULT_MAX_POINTS))
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
            ``max_points`` (display subsample of each cloud, default
            :data:`~pointsam.viz.scene.DEFAULT_MAX_POINTS`, 200,000; ``None``:
            every point; the page states it), ``click_budget_mb``, ``query``,
            ``labels``, ``pred``, ``class_names``, ``layers``, ``title``,
            ``cloud``; with a model, ``check_memory`` (default ``True``:
            a cloud the machine has no memory to view is refused, with the
            memory it would need, before the model runs;
            :func:`check_viewer_memory`).

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
    pieces = _page(scene, point_size)
    if out is None:
        return "".join(pieces)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    # piece by piece (no page-sized copy), atomically (a full disk keeps the old page)
    with atomic_write(path, "w", encoding="utf-8") as f:
        for piece in pieces:
            f.write(piece)
    return path


def _page(scene: Scene, point_size: float | None) -> list[str]:
    """The page as pieces: the template's text between its keys, and the values.

    Joining them would copy the whole page (twice its size in memory: plotly.js
    holds non-ASCII characters, so Python stores the page two bytes a
    character); :func:`to_html` writes them one by one instead.
    """
    template = _asset("viewer.html")
    parts = {"{{TITLE}}": _html.escape(scene.title), "{{PLOTLYJS}}": _plotlyjs(),
             "{{SCENE}}": scene_to_json(scene, point_size),
             "{{VIEWERJS}}": _asset("viewer.js")}
    at = sorted((template.index(k), k) for k in parts)  # each key once
    pieces, start = [], 0
    for i, k in at:
        pieces += [template[start:i], parts[k]]
        start = i + len(k)
    return pieces + [template[start:]]


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
