r"""The one table that maps a weight kind to a picture and to a viewer map
(:data:`VIEWS`): what :func:`pointsam.viz.attention_maps` draws and what
:func:`pointsam.viz.scene.build_scene` puts in the HTML viewer, for every kind
that the modules of :mod:`pointsam.nn` declare (``weight_kinds``); the shared
helpers live in :mod:`pointsam.viz.kinds`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from torch import Tensor

from ..nn.base import WeightKind
from .colors import colormap, to_numpy
from .kinds import (  # noqa: F401  (shared helpers of the pictures and maps)
    AttentionMap,
    LayerInputs,
    Weight,
    _cloud_slice,
    _declared,
    _head_mean,
    _nearest,
    _np_inputs,
    _outer_kind,
    branch_labels,
    cloud_tokens,
    layer_points,
    repeated_weight,
    rows_of,
    take,
)
from .render import Panel
from .temporal_views import picture_temporal, viewer_temporal

__all__ = ["VIEWS", "UNDECLARED", "View", "view_of", "recorded_weights",
           "PictureFrame", "ViewerFrame"]


@dataclass
class _Spot:
    """A layer's points and cloud ``cloud`` among them, with the query."""

    p: np.ndarray  # [S, 3] the layer's points
    bt: np.ndarray | None  # [S] their clouds
    idx: np.ndarray  # [S_b] the cloud's rows
    pc: np.ndarray  # [S_b, 3] the cloud's points
    qi: int  # the query's row within the cloud
    qg: int  # and within the layer
    title_q: str  # "query 7", "query ~7" at a subsampled layer


@dataclass
class PictureFrame:
    """What :func:`~pointsam.viz.attention_maps` draws on: the input cloud
    ``pos_in`` [N, 3], its clouds ``batch_in`` [N], the query point and the
    cloud to draw."""

    record: Mapping[str, Mapping[str, Tensor]]
    inputs: Mapping[str, LayerInputs]
    pos_in: np.ndarray
    batch_in: np.ndarray | None
    query: int
    cloud: int
    branch_names: Mapping[str, Sequence[str]]

    def at(self, layer: str, n_rows: int) -> _Spot | None:
        """Where a layer's ``n_rows`` rows live, in the cloud drawn (``None``:
        no recorded points of that size, or none in the cloud)."""
        loc = layer_points(layer, n_rows, self.inputs, self.pos_in, self.batch_in)
        if loc is None:
            return None
        p, bt = loc
        idx = _cloud_slice(bt, len(p), self.cloud)
        if len(idx) == 0:
            return None
        pc = p[idx]  # [S_b, 3]
        qi = _nearest(pc, self.pos_in[self.query])  # query's index within the cloud
        title_q = (f"query {self.query}" if len(p) == len(self.pos_in)
                   else f"query ~{self.query}")
        return _Spot(p, bt, idx, pc, qi, int(idx[qi]), title_q)


def _picture_channel(f: PictureFrame, wt: Weight, w: np.ndarray) -> AttentionMap:
    row = w[min(f.cloud, w.shape[0] - 1)]  # [C]
    return AttentionMap(wt.layer, "channel", f"{wt.label}: channel gate (cloud {f.cloud})",
                        bars=row, vmin=0.0, vmax=1.0)


def _picture_point(f: PictureFrame, wt: Weight, w: np.ndarray) -> AttentionMap | None:
    s = f.at(wt.layer, w.shape[0])
    if s is None:
        return None
    v = w[s.idx, 0]  # [S_b]
    return AttentionMap(wt.layer, "point", f"{wt.label}: point gate",
                        [Panel(s.pc, values=v)], raw={"weight": v}, raw_pos=s.pc)


def _picture_axis(f: PictureFrame, wt: Weight, w: np.ndarray) -> AttentionMap | None:
    r"""Each axis's weight against 1/3 (one row per axis, a diverging scale
    symmetric about 0 over the largest deviation): trained weights often stay
    near (1/3, 1/3, 1/3), and drawn directly as RGB they all look one grey;
    the row titles give each axis's range."""
    s = f.at(wt.layer, w.shape[0])
    if s is None:
        return None
    v = w[s.idx]  # [S_b, 3]
    dev = v - 1.0 / 3.0  # [S_b, 3]
    m = max(float(np.nanmax(np.abs(dev))) if dev.size else 0.0, 1e-3)
    lo, hi = np.nanmin(v, axis=0), np.nanmax(v, axis=0)  # [3] each
    panels = [Panel(s.pc, values=dev[:, a],
                    title=f"{ax}: weight {lo[a]:.3f} .. {hi[a]:.3f}")
              for a, ax in enumerate("xyz")]
    return AttentionMap(
        wt.layer, "axis", f"{wt.label}: axis weights minus 1/3", panels,
        vmin=-m, vmax=m, cmap="RdBu_r",
        raw={f"axis_{ax}_minus_third": dev[:, a] for a, ax in enumerate("xyz")},
        raw_pos=s.pc)


def _picture_neighbours(f: PictureFrame, wt: Weight, w: np.ndarray
                        ) -> AttentionMap | None:
    nbr_t, mask_t = wt.table("nbr_idx"), wt.table("nbr_mask")
    if nbr_t is None or nbr_t.shape[:2] != wt.tensor.shape[:2]:
        return None
    s = f.at(wt.layer, w.shape[0])
    if s is None:
        return None
    p, qg = s.p, s.qg
    nbr = to_numpy(nbr_t).astype(np.int64)  # [S, K]
    wq = _head_mean(w[qg])  # [K]
    vals = np.full(len(p), np.nan)  # [S], NaN outside the neighbourhood
    ok = (np.ones(len(wq), dtype=bool) if mask_t is None
          else to_numpy(mask_t).astype(bool)[qg])  # [K]
    vals[nbr[qg][ok]] = 0.0
    np.add.at(vals, nbr[qg][ok], wq[ok])  # duplicates add up
    v = vals[s.idx]  # [S_b]
    # frame the neighbourhood with some context around it
    ext = float(np.linalg.norm(p[nbr[qg]] - p[qg], axis=1).max())
    full = float(np.linalg.norm(s.pc - s.pc.mean(0), axis=1).max())
    focus = (p[qg], min(max(2.5 * ext, 0.08 * full), full)) if full > 0 else None
    return AttentionMap(
        wt.layer, "neighbour", f"{wt.label}: neighbour weights of {s.title_q}",
        [Panel(s.pc, values=v, query=s.qi, focus=focus)], vmin=0.0,
        raw={"weight": v}, raw_pos=s.pc)


def _picture_tokens(f: PictureFrame, wt: Weight, w: np.ndarray) -> AttentionMap | None:
    cen_t = wt.table("centres")
    if cen_t is None:
        return None
    s = f.at(wt.layer, w.shape[0])
    if s is None:
        return None
    cb, _ = cloud_tokens(cen_t, s.bt, len(s.p), w.shape[1], f.cloud)  # [M_b, 3]
    wq = _head_mean(w[s.qg, :len(cb)])  # [M_b]
    if len(cb) == 0:
        return None
    d2 = ((s.pc[:, None, :] - cb[None]) ** 2).sum(-1)  # [S_b, M_b]
    v = wq[np.argmin(d2, axis=1)]  # [S_b] each point shows its nearest token's weight
    return AttentionMap(
        wt.layer, "token", f"{wt.label}: token weights of {s.title_q}",
        [Panel(s.pc, values=v, query=s.qi, markers=cb,
               marker_colors=colormap(wq, 0.0, float(wq.max())))],
        vmin=0.0, raw={"weight": v}, raw_pos=s.pc)


def _picture_row(f: PictureFrame, wt: Weight, w: np.ndarray) -> AttentionMap | None:
    lp = f.inputs.get(wt.layer)  # [B, H, N_max, N_max] rows of the layer's own points
    if lp is None:
        return None
    p, bt = _np_inputs(lp)
    idx = _cloud_slice(bt, len(p), f.cloud)  # [N_b]
    qi = int(np.searchsorted(idx, idx[_nearest(p[idx], f.pos_in[f.query])]))
    vals = _head_mean(w[f.cloud, :, qi, :len(idx)], axis=0)  # [N_b]
    return AttentionMap(
        wt.layer, "row", f"{wt.label}: full attention of the query",
        [Panel(p[idx], values=vals, query=qi)], vmin=0.0,
        raw={"weight": vals}, raw_pos=p[idx])


def _picture_fusion(f: PictureFrame, wt: Weight, w: np.ndarray) -> AttentionMap | None:
    s = f.at(wt.layer, w.shape[0])
    if s is None:
        return None
    m = w.shape[2]
    names = branch_labels(f.record, wt.layer, m, f.branch_names)
    vs = [_head_mean(w[s.idx, :, i], axis=1) for i in range(m)]  # m x [S_b]
    return AttentionMap(
        wt.layer, "branch", f"{wt.label}: LAFF weight of each branch",
        [Panel(s.pc, values=v, title=nb) for v, nb in zip(vs, names)],
        raw={f"laff_{i}": v for i, v in enumerate(vs)}, raw_pos=s.pc)


def _picture_levels(f: PictureFrame, wt: Weight, w: np.ndarray) -> AttentionMap | None:
    s = f.at(wt.layer, w.shape[0])
    if s is None:
        return None
    vs = [_head_mean(w[s.idx, lv, :, 1], axis=1) for lv in range(w.shape[1])]  # [S_b]
    return AttentionMap(
        wt.layer, "level", f"{wt.label}: LAFF weight of each new level",
        [Panel(s.pc, values=v, title=f"level {i + 1}") for i, v in enumerate(vs)],
        raw={f"level_{i + 1}": v for i, v in enumerate(vs)}, raw_pos=s.pc)


def _picture_mean(f: PictureFrame, wt: Weight, w: np.ndarray) -> AttentionMap | None:
    if w.ndim > 2:
        return None
    s = f.at(wt.layer, w.shape[0])
    if s is None:
        return None
    v = w[s.idx].reshape(len(s.idx), -1).mean(1)  # [S_b]
    return AttentionMap(wt.layer, "mean", f"{wt.label}: mean {wt.key} per point",
                        [Panel(s.pc, values=v)], raw={"weight": v}, raw_pos=s.pc)


# ----------------------------------------------------------------- viewer maps
@dataclass
class _Rows:
    """A layer's weights restricted to the cloud shown."""

    n_layer: int  # rows of the layer (every cloud)
    bt: np.ndarray | None  # [S] clouds of the layer's points
    idx: slice | np.ndarray | None  # the cloud's rows (:func:`rows_of`)
    p: np.ndarray  # [n, 3] the cloud's points
    w: np.ndarray  # [n, ...] their weights
    ci: int  # the scene's cloud


@dataclass
class ViewerFrame:
    """What :func:`~pointsam.viz.build_scene` shows on: the builder ``b``, the
    input cloud ``pos_in`` [N, 3] with its clouds ``batch_in``, and the cloud
    shown (``pos_c`` [n, 3], the scene's cloud ``c0``)."""

    b: Any  # the scene builder of pointsam.viz.scene (not imported: no cycle)
    record: Mapping[str, Mapping[str, Tensor]]
    inputs: Mapping[str, LayerInputs]
    pos_in: np.ndarray
    batch_in: np.ndarray | None
    cloud: int
    pos_c: np.ndarray
    c0: int
    branch_names: Mapping[str, Sequence[str]]

    def at(self, wt: Weight, w: np.ndarray) -> _Rows | None:
        """The rows of ``w`` in the cloud shown and the scene cloud they live in
        (added to the scene when new; ``None``: no points of that size)."""
        loc = layer_points(wt.layer, w.shape[0], self.inputs, self.pos_in,
                           self.batch_in)
        if loc is None:
            return None
        p_all, bt = loc
        idx = rows_of(bt, self.cloud)
        p, w = take(p_all, idx), take(w, idx)  # [n, 3], [n, ...]
        if len(p) == 0:
            return None
        same = len(p) == len(self.pos_c) and np.array_equal(p, self.pos_c)
        ci = self.c0 if same else self.b.cloud_of(p, wt.label)
        return _Rows(len(p_all), bt, idx, p, w, ci)


def _viewer_channel(f: ViewerFrame, wt: Weight, w: np.ndarray) -> None:
    f.b.add(layer=wt.label, name="channel gate", kind="bars", cloud=f.c0,
            bars=w[min(f.cloud, w.shape[0] - 1)].astype(np.float32),  # [C]
            value_label="channel gate w (sigmoid)")


def _viewer_point(f: ViewerFrame, wt: Weight, w: np.ndarray) -> None:
    r = f.at(wt, w)
    if r is not None:
        f.b.scalar(wt.label, "point gate", r.ci, r.w, "point gate m (sigmoid)")


def _viewer_axis(f: ViewerFrame, wt: Weight, w: np.ndarray) -> None:
    r = f.at(wt, w)
    if r is None:
        return
    v = np.clip(np.nan_to_num(r.w), 0, None)  # [n, 3]
    s = v.sum(1, keepdims=True)  # [n, 1]
    rgb = np.where(s > 0, v / np.where(s > 0, s, 1), 1 / 3)  # [n, 3]
    f.b.add(layer=wt.label, name="axis weights (x,y,z = R,G,B)", kind="rgb",
            cloud=r.ci, rgb=f.b.shown(r.ci, np.round(rgb * 255).astype(np.uint8)))
    for a, ax in enumerate("xyz"):
        f.b.scalar(wt.label, f"axis weight {ax}", r.ci, v[:, a], "axis weight")


def _viewer_neighbours(what: str, f: ViewerFrame, wt: Weight, w: np.ndarray) -> None:
    nbr_t, mask_t = wt.table("nbr_idx"), wt.table("nbr_mask")
    if nbr_t is None or nbr_t.shape[:2] != wt.tensor.shape[:2]:
        return
    r = f.at(wt, w)
    if r is None:
        return
    nbr = take(to_numpy(nbr_t), r.idx).astype(np.int64, copy=False)  # [n, K]
    if mask_t is not None:
        nbr = np.where(take(to_numpy(mask_t), r.idx).astype(bool), nbr, -1)  # [n, K]
    if r.idx is not None:  # layer index -> cloud index
        inv = np.full(r.n_layer, -1, dtype=np.int64)  # [S]
        inv[r.idx] = np.arange(len(r.p))
        nbr = np.where(nbr >= 0, inv[np.clip(nbr, 0, None)], -1)  # [n, K]
    f.b.click(wt.label, f"{what} of the query (click)", r.ci, "neighbour", r.w, idx=nbr)


def _viewer_tokens(f: ViewerFrame, wt: Weight, w: np.ndarray) -> None:
    cen_t, asg_t = wt.table("centres"), wt.table("assign")
    if cen_t is None:
        return
    r = f.at(wt, w)
    if r is None:
        return
    cb, off = cloud_tokens(cen_t, r.bt, len(r.p), w.shape[1], f.cloud)  # [M_b, 3]
    if len(cb) == 0:
        return
    if asg_t is not None and asg_t.numel() == r.n_layer:
        asg = take(to_numpy(asg_t), r.idx).astype(np.int64) - off  # [n]
    else:
        d2 = ((r.p[:, None, :] - cb[None]) ** 2).sum(-1)  # [n, M_b]
        asg = np.argmin(d2, axis=1)  # [n]
    f.b.click(wt.label, "global token weights of the query (click)", r.ci, "token",
              r.w[:, :len(cb)], assign=asg, centres=cb)


def _viewer_row(f: ViewerFrame, wt: Weight, w: np.ndarray) -> None:
    li = f.inputs.get(wt.layer)
    if li is None:
        return
    p, bt = _np_inputs(li)
    idx = np.arange(len(p)) if bt is None else np.flatnonzero(bt == f.cloud)  # [n]
    ci = f.b.cloud_of(p[idx], wt.label)
    rows = w[f.cloud, :, :len(idx), :len(idx)].transpose(1, 2, 0)  # [n, n, H]
    # every row's columns are 0..n-1: a broadcast view, not n^2 indices
    f.b.click(wt.label, "full attention row (click)", ci, "row", rows,
              idx=np.broadcast_to(np.arange(len(idx)), (len(idx), len(idx))))


def _viewer_fusion(f: ViewerFrame, wt: Weight, w: np.ndarray) -> None:
    r = f.at(wt, w)
    if r is None:
        return
    m = w.shape[2]
    names = branch_labels(f.record, wt.layer, m, f.branch_names)
    for i in range(m):
        f.b.scalar(wt.label, f"LAFF weight of {names[i]}", r.ci, r.w[:, :, i],
                   "LAFF weight (softmax)")  # [n, H]


def _viewer_levels(f: ViewerFrame, wt: Weight, w: np.ndarray) -> None:
    r = f.at(wt, w)
    if r is None:
        return
    for lv in range(w.shape[1]):
        f.b.scalar(wt.label, f"LAFF weight of level {lv + 1}", r.ci, r.w[:, lv, :, 1],
                   "LAFF weight")  # [n, H]


def _viewer_mean(f: ViewerFrame, wt: Weight, w: np.ndarray) -> None:
    if w.ndim > 2:
        return
    r = f.at(wt, w)
    if r is not None:
        f.b.scalar(wt.label, f"mean {wt.key}", r.ci,
                   r.w.reshape(len(r.w), -1).mean(1), f"mean {wt.key}")  # [n]


# ----------------------------------------------------------------- the table
Picture = Callable[[PictureFrame, Weight, np.ndarray], AttentionMap | None]
Viewer = Callable[[ViewerFrame, Weight, np.ndarray], None]


@dataclass(frozen=True)
class View:
    """How one kind of weight is shown.

    Attributes:
        picture: Draws the weight ``[rows, ...]`` (float64) for one query:
            an :class:`AttentionMap`, or ``None`` where it has nothing to draw.
        viewer: Adds the weight's maps (float32) to the viewer's scene.
        why_not: Why a kind without picture and viewer is not shown.
    """

    picture: Picture | None
    viewer: Viewer | None
    why_not: str = ""

    @property
    def shown(self) -> bool:
        return self.picture is not None or self.viewer is not None


#: kind -> its picture (attention_maps) and its viewer maps (build_scene)
VIEWS: dict[str, View] = {
    WeightKind.CHANNEL_GATE: View(_picture_channel, _viewer_channel),
    WeightKind.POINT_GATE: View(_picture_point, _viewer_point),
    WeightKind.AXIS: View(_picture_axis, _viewer_axis),
    WeightKind.NEIGHBOUR: View(_picture_neighbours,
                               partial(_viewer_neighbours, "neighbours")),
    WeightKind.AXIS_TUBE: View(_picture_neighbours,
                               partial(_viewer_neighbours, "axial tube")),
    WeightKind.TOKEN: View(_picture_tokens, _viewer_tokens),
    WeightKind.FULL: View(_picture_row, _viewer_row),
    WeightKind.FUSION: View(_picture_fusion, _viewer_fusion),
    WeightKind.LEVELS: View(_picture_levels, _viewer_levels),
    WeightKind.TEMPORAL: View(picture_temporal, viewer_temporal),
    WeightKind.CROSS_MODAL: View(None, None,
                                 "the other modality's tokens have no points"),
    WeightKind.TABLE: View(None, None, "a table read by the weight next to it"),
}
#: a weight whose module declares no kind: its mean per point
UNDECLARED = View(_picture_mean, _viewer_mean)


def view_of(kind: WeightKind | str | None) -> View:
    """The :class:`View` of ``kind`` (:data:`UNDECLARED` for ``None`` or a kind
    outside the vocabulary)."""
    return UNDECLARED if kind is None else VIEWS.get(kind, UNDECLARED)


def recorded_weights(record: Mapping[str, Mapping[str, Tensor]],
                     names: Sequence[str]) -> Iterator[Weight]:
    """The weights of ``names`` that have something to show, in recording order.

    Tables and kinds without a view are left out, and so is a weight that a
    layer inside the same module recorded too (it is shown there).
    """
    for name in names:
        d = {k: v for k, v in record[name].items() if isinstance(v, Tensor)}
        declared = _declared(record, name)
        for key, t in d.items():
            kind = declared.get(key)
            if not view_of(kind).shown or not t.is_floating_point() or \
                    repeated_weight(record, name, t):
                continue
            outer = _outer_kind(record, name, t)
            kind = kind if outer is None else outer
            if view_of(kind).shown:
                yield Weight(name, key, kind, t, d)
