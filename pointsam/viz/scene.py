r"""What the interactive viewer shows: captured weights as a :class:`Scene`.

:func:`build_scene` reads the same inputs as :func:`~pointsam.viz.attention_maps`
(``capture(model)`` and ``capture_inputs(model)`` of one forward pass), but keeps
what a static picture has to drop: every head, and for the attention that
depends on a query point (neighbours, axial tubes, global tokens, full
attention rows, past scans' points) the weights of *every* query, so that the
page can answer a click. What each kind of weight becomes is the viewer column of
:data:`pointsam.viz.kind_views.VIEWS`, the table that
:func:`~pointsam.viz.attention_maps` shares: a scalar map (gates, fusion
weights per input, with a head selector), a bar chart (channel gates), an RGB
map (axis weights) or a click map (a query's neighbours, axial tube, tokens,
full-attention row, or the past scans' points it attends to, drawn as markers).

Points live in *clouds*: cloud 0 is the input; a layer that ran on subsampled
points (a deeper stage) gets its own. ``max_points`` subsamples a cloud for
display (a seeded random subset, the same for every map of that cloud;
default :data:`DEFAULT_MAX_POINTS`); ``click_budget_mb`` caps the bytes of the
click tables (shared evenly): past it, the weights of a subset of query rows
are kept and a click takes the nearest stored query.
The page states both.

**Memory.** Building a scene holds the recorded weights once (views, no
copies of a whole cloud's weights) plus what is shown, so its memory is
linear in the points and, past the budget, bounded by it; the page is bounded
by the budget. What dominates a large scan is the model's forward pass under
the recorder, linear in the points the model runs on (measured with
``bench/viewer_memory.py``): :func:`scene_from_model` runs the model on the
shown points only, so that too is bounded by the budget;
:func:`pointsam.viz.html.check_viewer_memory` refuses a cloud the machine has
no memory to view (``max_points=None`` on a huge scan) before the model runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .colors import to_numpy
from .kind_views import ViewerFrame, recorded_weights, view_of
from .kinds import LayerInputs, rows_of, take

__all__ = ["Scene", "build_scene", "scene_from_model", "per_point", "display_subsample",
           "DEFAULT_MAX_POINTS"]

#: The viewer's default display budget: points shown per cloud. It is above
#: every object cloud and a whole 64-beam scan (~120k points: shown whole), so
#: only larger scans are subsampled; it keeps the page near 50 MB (49 MB
#: measured for a 1M-point scan with local_global, against 71 MB unbounded)
#: and within what plotly's WebGL scatter draws interactively (the attention
#: guide, docs/guides/attention.md: a 123k-point page paints in 8-9 s in
#: software WebGL on 2 cores). A larger cloud is shown as a seeded random
#: subsample that the page states, and :func:`scene_from_model` runs the model
#: on that subsample only (its recorded forward pass is bounded by the budget).
DEFAULT_MAX_POINTS = 200_000



@dataclass
class Scene:
    """Arrays and metadata for :func:`pointsam.viz.to_html` (all NumPy).

    Attributes:
        clouds: ``[{"name", "pos" [n, 3] float32, "total", "shown"}]``;
            ``total`` is the cloud's size, ``shown`` the display indices (or
            ``None``: every point).
        maps: ``[{"id", "layer", "name", "kind", "cloud", ...}]``; ``kind`` is
            ``scalar`` (``values`` ``[heads+1, n]``, row 0 the head mean),
            ``rgb`` (``rgb`` ``[n, 3]`` uint8), ``labels`` (``labels`` ``[n]``),
            ``bars`` (``bars`` ``[C]``) or ``click`` (``table``).
        class_names: Names of the label ids.
        notes: Sentences the page shows (subsampling, click budgets).
        query: The initial query point (index into cloud 0).
        title: Page title.
    """

    clouds: list[dict[str, Any]] = field(default_factory=list)
    maps: list[dict[str, Any]] = field(default_factory=list)
    class_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    query: int = 0
    title: str = "pointsam attention"


def _heads(w: np.ndarray) -> np.ndarray:
    """``[n, H]`` weights -> ``[H+1, n]``: the head mean, then each head."""
    if w.ndim == 1:
        return w[None]
    mean = w.mean(axis=1)
    return np.concatenate([mean[None], w.T], axis=0) if w.shape[1] > 1 else mean[None]


class _Builder:
    def __init__(self, pos: np.ndarray, batch: np.ndarray | None, cloud: int,
                 max_points: int | None, budget: float, seed: int) -> None:
        self.pos_in, self.batch_in, self.cloud = pos, batch, cloud
        self.max_points, self.budget = max_points, budget
        self.rng = np.random.default_rng(seed)
        self.scene = Scene()
        self._keys: list[np.ndarray] = []  # full positions of each cloud

    def cloud_of(self, p: np.ndarray, name: str) -> int:
        """Index of the cloud with positions ``p`` (full, not subsampled)."""
        for i, q in enumerate(self._keys):
            if q.shape == p.shape and np.array_equal(q, p):
                return i
        shown = None
        if self.max_points is not None and len(p) > self.max_points:
            shown = np.sort(self.rng.choice(len(p), self.max_points, replace=False))
            self.scene.notes.append(
                f"{name}: showing {self.max_points:,} of {len(p):,} points (a random "
                f"display subsample, max_points={self.max_points})")
        self._keys.append(p)
        self.scene.clouds.append({
            "name": name, "total": len(p), "shown": shown,
            "pos": (p if shown is None else p[shown]).astype(np.float32)})
        return len(self._keys) - 1

    def shown(self, ci: int, a: np.ndarray) -> np.ndarray:
        s = self.scene.clouds[ci]["shown"]
        return a if s is None else a[s]

    def add(self, **m: Any) -> None:
        m["id"] = len(self.scene.maps)
        self.scene.maps.append(m)

    def scalar(self, layer: str, name: str, ci: int, w: np.ndarray,
               value_label: str, vmin: float | None = None,
               vmax: float | None = None) -> None:
        v = self.shown(ci, w)  # only the shown rows are copied
        vals = v.reshape(len(v), -1)  # [n, H]
        self.add(layer=layer, name=name, kind="scalar", cloud=ci,
                 values=_heads(vals).astype(np.float32), value_label=value_label,
                 vmin=vmin, vmax=vmax)

    def rows_kept(self, ci: int, n_rows: int, row_bytes: int, layer: str
                  ) -> np.ndarray:
        """Query rows (indices into the full cloud) whose weights are stored."""
        rows = self.scene.clouds[ci]["shown"]
        rows = np.arange(n_rows) if rows is None else rows
        cap = max(1, int(self.budget // max(row_bytes, 1)))
        if len(rows) > cap:
            rows = np.sort(self.rng.choice(rows, cap, replace=False))
            self.scene.notes.append(
                f"{layer}: click weights stored for {cap:,} of {n_rows:,} query "
                f"points (click_budget_mb); a click uses the nearest stored one")
        return rows

    def remap(self, ci: int, idx: np.ndarray) -> np.ndarray:
        """Full-cloud point indices -> shown indices (-1: not shown)."""
        s = self.scene.clouds[ci]["shown"]
        if s is None:
            return idx
        inv = np.full(self.scene.clouds[ci]["total"], -1, dtype=np.int64)
        inv[s] = np.arange(len(s))
        return np.where(idx >= 0, inv[np.clip(idx, 0, None)], -1)

    def click(self, *args: Any, **kwargs: Any) -> None:
        """Queue a click table (built by :meth:`finish`, once the budget is known)."""
        self.add(kind="click", pending=(args, kwargs))

    def finish(self) -> None:
        """Build the queued click tables, sharing the budget among them."""
        pending = [m for m in self.scene.maps if "pending" in m]
        if pending:
            self.budget /= len(pending)
        for m in pending:
            args, kwargs = m.pop("pending")
            m.update(self._click(*args, **kwargs))

    def _click(self, layer: str, name: str, ci: int, kind: str, w: np.ndarray,
               idx: np.ndarray | None = None, assign: np.ndarray | None = None,
               centres: np.ndarray | None = None, mpos: np.ndarray | None = None,
               mmask: np.ndarray | None = None, mscan: np.ndarray | None = None
               ) -> dict[str, Any]:
        """A click table: ``w`` ``[n, K, H]`` weights of each query row.

        Column k of row i weighs point ``idx[i, k]`` of the cloud, or token
        ``k`` (``centres`` ``[K, 3]``, ``assign`` ``[n]`` the token of each
        point), or the marker at ``mpos[i, k]`` (``[n, K, 3]``: points outside
        the cloud, the past scans' points of a temporal weight; ``mmask``
        ``[n, K]`` ``False`` where there is none, stored as NaN; ``mscan``
        ``[K]`` the group of each column, one marker symbol each).
        """
        n, k, h = w.shape
        heads = 1 if h == 1 else h + 1
        row_bytes = (k * heads * 2 + (k * 4 if idx is not None else 0)
                     + (k * 12 if mpos is not None else 0))
        rows = self.rows_kept(ci, n, row_bytes, layer)
        ww = w[rows]  # [R, K, H]
        ww = np.concatenate([ww.mean(2, keepdims=True), ww], axis=2) if h > 1 else ww
        table = {"rows": self.remap(ci, rows).astype(np.int32),
                 "w": np.round(np.clip(ww.transpose(2, 0, 1), 0, 1) * 65535
                               ).astype(np.uint16),  # [H+1, R, K]
                 "k": k}
        if idx is not None:
            table["idx"] = self.remap(ci, idx[rows]).astype(np.int32)  # [R, K]
        if assign is not None:
            table["assign"] = self.shown(ci, assign).astype(np.int32)  # [n]
            table["centres"] = centres.astype(np.float32)  # [K, 3]
        if mpos is not None:
            mp = mpos[rows].astype(np.float32)  # [R, K, 3]
            if mmask is not None:
                mp[~mmask[rows].astype(bool)] = np.nan
            table["mpos"] = mp
            table["mscan"] = (np.zeros(k) if mscan is None else mscan
                              ).astype(np.int32)  # [K]
        return dict(layer=layer, name=name, kind="click", cloud=ci, click=kind,
                    table=table, heads=h, value_label="attention weight (softmax)")


def build_scene(record: Mapping[str, Mapping[str, Tensor]],
                inputs: Mapping[str, LayerInputs], pos: Any, batch: Any = None, *,
                cloud: int = 0, labels: Any = None, pred: Any = None,
                class_names: Sequence[str] | None = None,
                branch_names: Mapping[str, Sequence[str]] | None = None,
                layers: Sequence[str] | None = None, query: int | None = None,
                max_points: int | None = DEFAULT_MAX_POINTS,
                click_budget_mb: float = 16.0,
                title: str = "pointsam attention", seed: int = 0) -> Scene:
    r"""Collect every captured map of cloud ``cloud`` for the viewer.

    Args:
        record: ``capture(model)`` result (``name -> {key -> Tensor}``).
        inputs: ``capture_inputs(model)`` result.
        pos: Input points ``[N, 3]``.
        batch: Input cloud ids ``[N]`` (``None``: one cloud).
        cloud: The cloud to show.
        labels: True labels ``[N]`` of the input points (optional).
        pred: Predicted labels ``[N]`` (optional).
        class_names: Names of the label ids.
        branch_names: Names of LAFF branches per layer.
        layers: Only these module names (default: every recorded one).
        query: Initial query point (default: the one nearest the centroid).
        max_points: Subsample each cloud to at most this many points for
            display (default: :data:`DEFAULT_MAX_POINTS`; ``None``: every
            point).
        click_budget_mb: Bytes (MiB) of all click tables together (shared
            evenly); a table over its share keeps a random subset of query rows.
        title: Page title.
        seed: Seed of the display subsample.

    Returns:
        The :class:`Scene`.
    """
    pos_in = to_numpy(pos, np.float64)
    if pos_in.ndim != 2 or pos_in.shape[1] != 3 or len(pos_in) == 0:
        raise ValueError(f"pos must be a non-empty [N, 3] array, got shape "
                         f"{tuple(pos_in.shape)}")
    if max_points is not None and max_points < 1:
        raise ValueError(f"max_points must be positive, got {max_points}")
    batch_in = None if batch is None else to_numpy(batch).astype(np.int64)
    sel = rows_of(batch_in, cloud)
    pos_c = take(pos_in, sel)  # [n, 3]
    if len(pos_c) == 0:
        raise ValueError(f"cloud {cloud} has no points")
    b = _Builder(pos_in, batch_in, cloud, max_points, click_budget_mb * 2**20, seed)
    b.scene.title = title
    b.scene.class_names = list(class_names or [])
    c0 = b.cloud_of(pos_c, "input")
    q = int(np.argmin(((pos_c - pos_c.mean(0)) ** 2).sum(1))) if query is None \
        else int(query)
    if not 0 <= q < len(pos_c):
        raise ValueError(f"query {q} is out of range for {len(pos_c)} points")
    shown0 = b.scene.clouds[c0]["shown"]
    if shown0 is not None:  # the nearest shown point stands in for the query
        q = int(np.argmin(((pos_c[shown0] - pos_c[q]) ** 2).sum(1)))
    b.scene.query = q
    for lab, nm in ((labels, "true labels"), (pred, "predicted labels")):
        if lab is not None:
            a = to_numpy(lab).reshape(-1)
            if len(a) != len(pos_in):
                raise ValueError(f"{nm} have {len(a)} entries for {len(pos_in)} points")
            a = take(a, sel)
            b.add(layer="labels", name=nm, kind="labels", cloud=c0,
                  labels=b.shown(c0, a).astype(np.int32))
    frame = ViewerFrame(b, record, inputs, pos_in, batch_in, cloud, pos_c, c0,
                        branch_names or {})
    for wt in recorded_weights(record, list(record) if layers is None else layers):
        viewer = view_of(wt.kind).viewer
        if viewer is not None:  # float32, a view of the record where it can be
            viewer(frame, wt, to_numpy(wt.tensor).astype(np.float32, copy=False))
    b.finish()
    if not any(m["kind"] not in ("labels",) for m in b.scene.maps):
        b.scene.notes.append("no attention weights were recorded (a plain backbone?)")
    # the cloud itself, coloured by height: something to look at in any case
    b.scalar("input", "height (z)", c0, pos_c[:, 2], "z")
    return b.scene


def per_point(data: Any, idx: Any) -> Any:
    """``data`` with every per-point tensor field restricted to the rows ``idx``."""
    n, sub = data.pos.size(0), data.clone()
    for key, v in data.items():
        if isinstance(v, Tensor) and v.dim() > 0 and v.size(0) == n:
            sub[key] = v[idx]
    return sub


def display_subsample(n: int, max_points: int | None, seed: int = 0
                      ) -> np.ndarray | None:
    """Sorted rows of the seeded random display subsample of ``n`` points, or
    ``None`` when all ``n`` fit ``max_points`` (the rows :func:`build_scene`
    shows of a cloud with that seed)."""
    if max_points is None or n <= max_points:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, max_points, replace=False))


def scene_from_model(model: torch.nn.Module, data: Any, **kwargs: Any) -> Scene:
    """Run ``model`` on one ``Data`` cloud and collect its :class:`Scene`.

    A cloud of more than ``max_points`` points (the viewer's budget, default
    :data:`DEFAULT_MAX_POINTS`) is subsampled *before* the model runs: the
    model runs on the shown points (a seeded random subsample, stated on the
    page), so the memory of the forward pass under the recorder, which holds
    every weight of every point, is bounded by the budget, not by the scan.
    ``max_points=None`` runs every point (memory grows with the scan).

    Labels come from ``data.y`` (when per point) and the argmax of per-point
    logits; keyword arguments go to :func:`build_scene`.
    """
    from .gallery import _branch_names, run_model

    n_given = data.pos.size(0)
    rows = display_subsample(n_given, kwargs.get("max_points", DEFAULT_MAX_POINTS),
                             kwargs.get("seed", 0))
    if rows is not None:
        data = per_point(data, torch.from_numpy(rows))
    logits, _, rec, inputs = run_model(model, data)
    n = data.pos.size(0)
    y = getattr(data, "y", None)
    if "labels" not in kwargs and isinstance(y, Tensor) and y.numel() == n and n > 1:
        kwargs["labels"] = y.reshape(-1)
    if "pred" not in kwargs and logits.dim() == 2 and logits.size(0) == n and n > 1:
        kwargs["pred"] = logits.argmax(-1)
    kwargs.setdefault("branch_names", _branch_names(model))
    scene = build_scene(rec, inputs, data.pos, None, **kwargs)
    if rows is not None:
        scene.notes.insert(0, (
            f"the model ran on the {len(rows):,} shown points, a random subsample "
            f"of the {n_given:,} given (the viewer's budget, max_points="
            f"{len(rows)}; pointsam viz --html-max-points 0 runs every point)"))
    if logits.dim() == 2 and logits.size(0) == 1 and n > 1:  # classification
        c = int(logits.argmax(-1)[0])
        names = kwargs.get("class_names") or []
        scene.title += f" | predicted: {names[c] if c < len(names) else c}"
    return scene
