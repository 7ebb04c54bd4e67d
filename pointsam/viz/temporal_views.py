r"""The picture and the viewer map of temporal weights (:class:`~pointsam.nn.
TemporalAttention`, kind ``temporal``), in :data:`pointsam.viz.kind_views.VIEWS`.

A temporal weight ``attn`` :math:`(N, T k, H)` comes with the tables its module
records next to it: ``nbr_pos`` :math:`(N, T k, 3)` (the attended points of the
past scans, in the frame of the layer's ``pos``), ``nbr_mask`` :math:`(N, T k)`
and ``nbr_frame`` :math:`(T k)` (the past scan of each column, 1 = the previous
one). The past scans' clouds themselves are not recorded: the current cloud is
drawn grey and the attended past points as markers coloured by their weight.
The query cloud is the layer's own recorded input, so both placements of
:class:`~pointsam.models.TemporalLidarSegmenter` (full resolution, and the
coarse one on voxel centres) are drawn alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .colors import colormap, to_numpy
from .kinds import AttentionMap, Weight, _head_mean, take
from .render import Panel

__all__ = ["picture_temporal", "viewer_temporal"]


def _tables(wt: Weight) -> tuple[Any, Any, Any] | None:
    """``(nbr_pos, nbr_mask, nbr_frame)`` next to the weight (``None``: not
    recorded, or not of the weight's rows and columns)."""
    pos_t, mask_t, fr_t = (wt.table("nbr_pos"), wt.table("nbr_mask"),
                           wt.table("nbr_frame"))
    if pos_t is None or fr_t is None or pos_t.shape[:2] != wt.tensor.shape[:2] \
            or fr_t.numel() != wt.tensor.shape[1]:
        return None
    return pos_t, mask_t, fr_t


def picture_temporal(f: Any, wt: Weight, w: np.ndarray) -> AttentionMap | None:
    r"""One panel per past scan (``scan t-1``, ``scan t-2`` ...): the layer's
    cloud in grey with the query marked, and the query's k candidates of that
    scan as markers coloured by their head-mean weight, on one scale over all
    panels (0 to the query's largest weight). The raw PLY holds the
    candidates: positions, ``weight`` and ``scan`` (1 = the previous one).

    ``f`` is a :class:`~pointsam.viz.kind_views.PictureFrame` (not imported:
    no cycle).
    """
    tabs = _tables(wt)
    if tabs is None:
        return None
    s = f.at(wt.layer, w.shape[0])
    if s is None:
        return None
    pos_t, mask_t, fr_t = tabs
    frame = to_numpy(fr_t).astype(np.int64).reshape(-1)  # [T k]
    cand = to_numpy(pos_t[s.qg], np.float64)  # [T k, 3]
    ok = (np.ones(len(frame), dtype=bool) if mask_t is None
          else to_numpy(mask_t[s.qg]).astype(bool))  # [T k]
    wq = _head_mean(w[s.qg])  # [T k]
    top = float(wq[ok].max()) if ok.any() else 0.0
    vmax = top if top > 0 else 1.0
    # frame the query and its candidates with some context around them
    q = s.p[s.qg]  # [3]
    ext = float(np.linalg.norm(cand[ok] - q, axis=1).max()) if ok.any() else 0.0
    full = float(np.linalg.norm(s.pc - s.pc.mean(0), axis=1).max())
    focus = (q, min(max(1.5 * ext, 0.08 * full), max(full, ext))) \
        if max(full, ext) > 0 else None
    grey = np.full(len(s.pc), np.nan)  # [S_b] the current cloud has no weight
    num_past = int(frame.max()) if len(frame) else 0
    panels = []
    for tau in range(1, num_past + 1):
        sel = ok & (frame == tau)  # [T k]
        panels.append(Panel(
            s.pc, values=grey, query=s.qi, markers=cand[sel],
            marker_colors=colormap(wq[sel], 0.0, vmax), focus=focus,
            title=f"scan t-{tau}: {int(sel.sum())} points, weight {wq[sel].sum():.3f}"))
    if not panels:
        return None
    return AttentionMap(
        wt.layer, "temporal",
        f"{wt.label}: temporal weights of {s.title_q} over the {num_past} "
        f"previous scans", panels, vmin=0.0, vmax=vmax,
        raw={"weight": wq[ok], "scan": frame[ok].astype(np.float64)},
        raw_pos=cand[ok])


def viewer_temporal(f: Any, wt: Weight, w: np.ndarray) -> None:
    """A click map on the layer's cloud (grey): a click shows the query's T k
    attended past points as markers coloured by weight, one marker symbol per
    past scan. ``f`` is a :class:`~pointsam.viz.kind_views.ViewerFrame`."""
    tabs = _tables(wt)
    if tabs is None:
        return
    r = f.at(wt, w)
    if r is None:
        return
    pos_t, mask_t, fr_t = tabs
    mpos = take(to_numpy(pos_t), r.idx)  # [n, T k, 3], a view where it can be
    mmask = None if mask_t is None else take(to_numpy(mask_t), r.idx)  # [n, T k]
    f.b.click(wt.label, "past scans' points weighted by the query (click)", r.ci,
              "temporal", r.w, mpos=mpos, mmask=mmask,
              mscan=to_numpy(fr_t).reshape(-1))
