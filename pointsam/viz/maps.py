r"""From recorded attention weights to things to draw (:class:`AttentionMap`).

:func:`pointsam.viz.capture` (:func:`pointsam.nn.base.record_attention`) records
``module name -> {weight name -> Tensor}``; :func:`capture_inputs` records the
``pos`` and ``batch`` each attention module saw (deep layers of a backbone run
on fewer, subsampled points). :func:`attention_maps` turns both into maps, by
the weight names and shapes that :mod:`pointsam.nn` documents:

============================  ===============================  =====================
weights                        module                           drawn as
============================  ===============================  =====================
``channel`` [B, C]             ChannelGate, CBAM                bar chart of cloud b
``point`` [N, 1]               PointGate, CBAM                  per-point weight
``axis`` [N, 3]                AxialAttention                   x, y, z as R, G, B
``attn`` [N, K, H] + nbr_idx   LocalAttention                   neighbours of a query
``attn`` [N, M, H] + centres   GlobalPooledAttention            token weights of a query
``attn`` [B, H, N, N]          MultiHeadPointAttention          weights of a query row
``a`` / ``fusion`` [N, H, m]   LAFF, LocalGlobal, MultiBranch   one map per branch
``a`` [N, L-1, H, 2]           LAFFMultiLevel                   one map per level
other [N, ...]                 anything else                    mean per point
============================  ===============================  =====================

Heads are averaged (:math:`\bar w = \frac1H \sum_h w_h`). Point panels use the
data range of the map (shared by all panels of one map, written on its colour
bar); channel bar charts use the gate's full range 0..1. A query is an index
into the *input* cloud; at a subsampled layer the nearest point of that layer
in the same cloud stands in for it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..nn.base import PointModule
from .colors import to_numpy
from .render import Panel

__all__ = ["AttentionMap", "LayerInputs", "capture_inputs", "attention_maps",
           "select_layers"]


_VALUE_LABELS = {
    "point": "point gate m (sigmoid)",
    "channel": "channel gate w (sigmoid)",
    "neighbour": "weight (softmax over k)",
    "token": "weight (softmax over tokens)",
    "row": "weight (softmax over points)",
    "branch": "LAFF weight (softmax)",
    "level": "LAFF weight of new level",
    "axis": "axis weight",
}


@dataclass
class LayerInputs:
    """Positions and cloud ids that one attention module saw (its last call)."""

    pos: Tensor
    batch: Tensor | None


@dataclass
class AttentionMap:
    """One picture's worth of attention: point panels or a bar chart.

    Attributes:
        layer: Qualified module name (``backbone.stages.1.attn``).
        key: The weight's name in the module's dict (``point``, ``attn`` ...).
        kind: ``point``, ``channel``, ``axis``, ``neighbour``, ``token``,
            ``row``, ``branch``, ``level`` or ``mean``.
        title: Human-readable title.
        panels: Point panels (empty for a bar chart).
        bars: Bar heights ``[C]`` (channel weights) or ``None``.
        vmin: Low end of the colour scale (``None``: from the data).
        vmax: High end of the colour scale.
        raw: Per-point raw weights for the PLY export (``name -> [N]``) with
            the positions in ``raw_pos``.
    """

    layer: str
    kind: str
    title: str
    panels: list[Panel] = field(default_factory=list)
    bars: np.ndarray | None = None
    vmin: float | None = None
    vmax: float | None = None
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    raw_pos: np.ndarray | None = None
    key: str = ""

    @property
    def value_label(self) -> str:
        """What the colour bar (or bar chart axis) measures, with its range."""
        return _VALUE_LABELS.get(self.kind, f"mean {self.key or 'weight'}")

    @property
    def slug(self) -> str:
        """A file-name-safe name: ``<layer>__<key>_<kind>``."""
        base = (self.layer or "model").replace(".", "_")
        if self.key and self.key != self.kind:
            return f"{base}__{self.key}_{self.kind}"
        return f"{base}__{self.kind}"


def _find_pos_batch(args: tuple[Any, ...], kwargs: Mapping[str, Any]
                    ) -> tuple[Tensor | None, Tensor | None]:
    pos = kwargs.get("pos", args[1] if len(args) > 1 else None)
    batch = kwargs.get("batch", args[2] if len(args) > 2 else None)
    if not (isinstance(pos, Tensor) and pos.dim() == 2 and pos.size(-1) == 3):
        return None, None
    if not (isinstance(batch, Tensor) and batch.dim() == 1
            and batch.size(0) == pos.size(0)):
        batch = None
    return pos, batch


@contextmanager
def capture_inputs(model: nn.Module) -> Iterator[dict[str, LayerInputs]]:
    """Record the ``pos``/``batch`` inputs of every attention module of ``model``.

    Used with :func:`pointsam.viz.capture` so that weights of subsampled layers
    can be drawn at their own points. Modules without a ``pos`` argument (LAFF)
    are not recorded; :func:`attention_maps` gives them their parent's points.

    Example:
        >>> import torch
        >>> from pointsam.nn import PointGate
        >>> g = PointGate(8, k=4)
        >>> with capture_inputs(g) as inputs:
        ...     _ = g(torch.randn(30, 8), torch.randn(30, 3))
        >>> inputs[""].pos.shape
        torch.Size([30, 3])
    """
    found: dict[str, LayerInputs] = {}
    handles = []
    for name, mod in model.named_modules():
        if not isinstance(mod, PointModule):
            continue

        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                 _name: str = name) -> None:
            pos, batch = _find_pos_batch(args, kwargs)
            if pos is not None:
                found[_name] = LayerInputs(pos.detach(), None if batch is None
                                           else batch.detach())

        handles.append(mod.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield found
    finally:
        for h in handles:
            h.remove()


def select_layers(names: Sequence[str], pattern: str | None) -> list[str]:
    """The recorded layers that ``pattern`` names: itself and the layers inside it,
    or a glob (``backbone.*.attn``).

    Raises:
        ValueError: nothing matches; the message lists the recorded layers.
    """
    names = list(names)
    if pattern is None:
        return names
    hits = [n for n in names if n == pattern or n.startswith(pattern + ".")
            or fnmatch.fnmatchcase(n, pattern)]
    if not hits:
        raise ValueError(f"no attention layer matches {pattern!r}; recorded layers: "
                         f"{', '.join(repr(n) for n in names) or '(none)'}")
    return hits


def _cloud_slice(batch: np.ndarray | None, n: int, b: int) -> np.ndarray:
    if batch is None:
        return np.arange(n)
    return np.flatnonzero(batch == b)


def _nearest(pos: np.ndarray, p: np.ndarray) -> int:
    return int(np.argmin(((pos - p) ** 2).sum(1)))


def _head_mean(w: np.ndarray, axis: int = -1) -> np.ndarray:
    return w.mean(axis=axis) if w.ndim > 1 else w


def _np_inputs(li: LayerInputs) -> tuple[np.ndarray, np.ndarray | None]:
    return (to_numpy(li.pos, np.float64),
            None if li.batch is None else to_numpy(li.batch).astype(np.int64))


def layer_points(name: str, n_rows: int, inputs: Mapping[str, LayerInputs],
                 pos_in: np.ndarray, batch_in: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Positions and cloud ids of the points a layer's ``n_rows`` weights belong to.

    The layer's own recorded inputs, else its closest recorded parent's (LAFF
    has no ``pos``), else the input cloud, else any layer of that size.
    """
    cands = [name] + [name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)]
    cands += [""] if name else []
    for c in cands:
        li = inputs.get(c)
        if li is not None and li.pos.size(0) == n_rows:
            return _np_inputs(li)
    if n_rows == len(pos_in):
        return pos_in, batch_in
    for li in inputs.values():  # last resort: a layer of the same size
        if li.pos.size(0) == n_rows:
            return _np_inputs(li)
    return None


def repeated_weight(record: Mapping[str, Mapping[str, Tensor]], name: str,
                    t: Tensor) -> bool:
    """Whether a layer inside ``name`` recorded the same weights (composites)."""
    for other in record:
        if other != name and (other.startswith(name + ".") or name == ""):
            for u in record[other].values():
                if isinstance(u, Tensor) and u.shape == t.shape and \
                        u.dtype == t.dtype and torch.equal(u, t):
                    return True
    return False


def attention_maps(record: Mapping[str, Mapping[str, Tensor]],
                   inputs: Mapping[str, LayerInputs], pos: Tensor,
                   batch: Tensor | None = None, *, query: int = 0, cloud: int = 0,
                   layers: Sequence[str] | None = None,
                   branch_names: Mapping[str, Sequence[str]] | None = None
                   ) -> list[AttentionMap]:
    r"""Interpret recorded weights as maps of cloud ``cloud`` (see the module table).

    Args:
        record: ``capture(model)`` result (``name -> {key -> Tensor}``).
        inputs: ``capture_inputs(model)`` result.
        pos: Input points ``[N, 3]`` of the batch that was run.
        batch: Input cloud ids ``[N]`` (``None``: one cloud).
        query: Index of the query point in the input ``pos`` (for neighbour,
            token and row maps).
        cloud: The cloud to draw.
        layers: Only these module names (default: every recorded one).
        branch_names: Names of LAFF branches per layer (``["local", "global"]``).

    Returns:
        The maps, in recording order.
    """
    pos_in = to_numpy(pos, np.float64)
    batch_in = None if batch is None else to_numpy(batch).astype(np.int64)
    n_in = len(pos_in)
    if not 0 <= query < n_in:
        raise ValueError(f"query {query} is out of range for {n_in} points")
    in_cloud = _cloud_slice(batch_in, n_in, cloud)
    if len(in_cloud) == 0:
        raise ValueError(f"cloud {cloud} has no points")
    if batch_in is not None and batch_in[query] != cloud:
        raise ValueError(f"query {query} is in cloud {batch_in[query]}, not {cloud}")
    qpos = pos_in[query]
    names = list(record) if layers is None else list(layers)
    maps: list[AttentionMap] = []
    branch_names = branch_names or {}

    def where(name: str, n_rows: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        return layer_points(name, n_rows, inputs, pos_in, batch_in)

    def repeated(name: str, t: Tensor) -> bool:
        return repeated_weight(record, name, t)

    key = ""

    def emit(amap: AttentionMap) -> None:
        amap.key = key  # the weight being interpreted (closure over the loop)
        maps.append(amap)

    for name in names:
        d = {k: v for k, v in record[name].items() if isinstance(v, Tensor)}
        label = name or "model"
        for key, t in d.items():
            if key in ("nbr_idx", "nbr_mask", "centres", "assign") or \
                    not t.is_floating_point() or repeated(name, t):
                continue
            w = to_numpy(t, np.float64)
            if key == "channel" and w.ndim == 2:
                row = w[min(cloud, w.shape[0] - 1)]
                emit(AttentionMap(name, "channel",
                                  f"{label}: channel gate (cloud {cloud})",
                                  bars=row, vmin=0.0, vmax=1.0))
                continue
            if w.ndim == 4 and key == "attn" and w.shape[2] == w.shape[3]:
                # MultiHeadPointAttention [B, H, N_max, N_max]
                lp = inputs.get(name)
                if lp is None:
                    continue
                p, bt = to_numpy(lp.pos, np.float64), (
                    None if lp.batch is None else to_numpy(lp.batch).astype(np.int64))
                idx = _cloud_slice(bt, len(p), cloud)
                qi = int(np.searchsorted(idx, idx[_nearest(p[idx], qpos)]))
                vals = _head_mean(w[cloud, :, qi, :len(idx)], axis=0)  # [N_b]
                emit(AttentionMap(
                    name, "row", f"{label}: full attention of the query",
                    [Panel(p[idx], values=vals, query=qi)], vmin=0.0,
                    raw={"weight": vals}, raw_pos=p[idx]))
                continue
            loc = where(name, w.shape[0])
            if loc is None:
                continue
            p, bt = loc
            idx = _cloud_slice(bt, len(p), cloud)
            if len(idx) == 0:
                continue
            pc = p[idx]
            qi = _nearest(pc, qpos)  # query's index within the cloud
            qg = int(idx[qi])        # and within the layer
            title_q = f"query {query}" if len(p) == n_in else f"query ~{query}"
            if key == "point" and w.ndim == 2 and w.shape[1] == 1:
                v = w[idx, 0]
                emit(AttentionMap(name, "point", f"{label}: point gate",
                                  [Panel(pc, values=v)], raw={"weight": v},
                                  raw_pos=pc))
            elif key == "axis" and w.ndim == 2 and w.shape[1] == 3:
                from .colors import axis_colors
                v = w[idx]
                emit(AttentionMap(
                    name, "axis", f"{label}: axis weights (x,y,z = R,G,B)",
                    [Panel(pc, colors=axis_colors(v), legend=[
                        ("x", (1, 0, 0)), ("y", (0, 1, 0)), ("z", (0, 0, 1))])],
                    raw={"axis_x": v[:, 0], "axis_y": v[:, 1], "axis_z": v[:, 2]},
                    raw_pos=pc))
            elif w.ndim == 3 and "nbr_idx" in d and d["nbr_idx"].shape[:2] == t.shape[:2]:
                nbr = to_numpy(d["nbr_idx"]).astype(np.int64)
                wq = _head_mean(w[qg])  # [K]
                vals = np.full(len(p), np.nan)
                ok = (np.ones(len(wq), dtype=bool) if "nbr_mask" not in d
                      else to_numpy(d["nbr_mask"]).astype(bool)[qg])
                vals[nbr[qg][ok]] = 0.0
                np.add.at(vals, nbr[qg][ok], wq[ok])  # duplicates add up
                v = vals[idx]
                # frame the neighbourhood with some context around it
                ext = float(np.linalg.norm(p[nbr[qg]] - p[qg], axis=1).max())
                full = float(np.linalg.norm(pc - pc.mean(0), axis=1).max())
                focus = (p[qg], min(max(2.5 * ext, 0.08 * full), full)) \
                    if full > 0 else None
                emit(AttentionMap(
                    name, "neighbour", f"{label}: neighbour weights of {title_q}",
                    [Panel(pc, values=v, query=qi, focus=focus)], vmin=0.0,
                    raw={"weight": v}, raw_pos=pc))
            elif w.ndim == 3 and "centres" in d:
                cen = to_numpy(d["centres"], np.float64)
                m_max = w.shape[1]
                counts = (np.bincount(bt, minlength=cloud + 1) if bt is not None
                          else np.array([len(p)]))
                m_b = np.minimum(counts, m_max)
                off = int(m_b[:cloud].sum())
                cb = cen[off:off + int(m_b[cloud])]  # [M_b, 3]
                wq = _head_mean(w[qg, :len(cb)])  # [M_b]
                if len(cb) == 0:
                    continue
                d2 = ((pc[:, None, :] - cb[None]) ** 2).sum(-1)  # [N_b, M_b]
                v = wq[np.argmin(d2, axis=1)]
                from .colors import colormap
                emit(AttentionMap(
                    name, "token", f"{label}: token weights of {title_q}",
                    [Panel(pc, values=v, query=qi, markers=cb,
                           marker_colors=colormap(wq, 0.0, float(wq.max())))],
                    vmin=0.0, raw={"weight": v}, raw_pos=pc))
            elif key in ("a", "fusion", "laff") and w.ndim == 3:
                m = w.shape[2]
                parent = name.rsplit(".", 1)[0] if "." in name else ""
                fused_lg = key == "fusion" or (parent != name and parent in record
                                               and "fusion" in record[parent])
                names_b = list(branch_names.get(name, ())) or list(
                    branch_names.get(parent, ()))[:m] or (
                    ["local", "global"] if fused_lg and m == 2 else
                    ["x", "y", "z"] if m == 3 and "ax" in name.lower() else
                    [f"branch {i}" for i in range(m)])
                vs = [_head_mean(w[idx, :, i], axis=1) for i in range(m)]  # [N_b]
                emit(AttentionMap(
                    name, "branch", f"{label}: LAFF weight of each branch",
                    [Panel(pc, values=v, title=nb) for v, nb in zip(vs, names_b)],
                    raw={f"laff_{i}": v for i, v in enumerate(vs)},
                    raw_pos=pc))
            elif key == "a" and w.ndim == 4:
                vs = [_head_mean(w[idx, lv, :, 1], axis=1) for lv in range(w.shape[1])]
                emit(AttentionMap(
                    name, "level", f"{label}: LAFF weight of each new level",
                    [Panel(pc, values=v, title=f"level {i + 1}")
                     for i, v in enumerate(vs)],
                    raw={f"level_{i + 1}": v for i, v in enumerate(vs)}, raw_pos=pc))
            elif w.ndim <= 2:
                v = w[idx].reshape(len(idx), -1).mean(1)
                emit(AttentionMap(name, "mean", f"{label}: mean {key} per point",
                                  [Panel(pc, values=v)], raw={"weight": v},
                                  raw_pos=pc))
    return maps
