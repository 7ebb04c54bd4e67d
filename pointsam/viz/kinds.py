r"""One interpreter of recorded weights: what each kind shows, as a picture and
in the viewer.

Every attention module declares the kind of each weight it returns
(:attr:`pointsam.nn.PointModule.weight_kinds`, vocabulary
:class:`~pointsam.nn.WeightKind`), and :func:`~pointsam.nn.record_attention`
keeps the declarations with the weights (:attr:`AttentionRecord.kinds`).
:data:`VIEWS` is the one table that turns a kind into things to look at: its
*picture* (what :func:`~pointsam.viz.attention_maps` draws for one query
point, an :class:`AttentionMap`) and its *viewer* maps (what
:func:`~pointsam.viz.build_scene` puts in the page: every head and, for the
weights that depend on a query, the row of every query). Nothing here reads a
weight's name or guesses from its shape.

=============  =====================  =========================  ===============================
kind           weights                picture                    viewer
=============  =====================  =========================  ===============================
channel_gate   [B, C]                 bar chart of cloud b       bar chart
point_gate     [N, 1]                 per-point weight           scalar map
axis           [N, 3]                 x, y, z as R, G, B         RGB map and one map per axis
neighbour      [N, K, H] + nbr_idx    neighbours of a query      click map: a query's neighbours
axis_tube      [N, K, H] + nbr_idx    neighbours of a query      click map: a query's axial tube
token          [N, M, H] + centres    token weights of a query   click map: a query's tokens
full           [B, H, N, N]           a query's row              click map: a query's row
fusion         [N, H, m]              one panel per input        one map per input
levels         [N, L-1, H, 2]         one panel per new level    one map per level
temporal       [N, T k, H] + nbr_pos  one panel per past scan    click map: a query's past points
cross_modal    [N, T, H]              not drawn: the other modality's tokens have no points
table          indices, positions     read by the neighbour, token and temporal weights next to them
(undeclared)   [N] or [N, C]          mean per point             mean per point
=============  =====================  =========================  ===============================

A composite re-exports its children's weights (CBAM's ``point``,
LocalGlobalAttention's ``local``): such a weight is shown once, at the child
that recorded it with its tables, with the kind that the outermost module
holding it declares (AxialAttention's ``x`` makes its branch's neighbour rows
an axial tube). A fusion weight's inputs are named by the ``branch_names``
argument, else by what the module or its parent declares
(:attr:`~pointsam.nn.PointModule.branch_names`), else ``branch i``.

Heads are averaged in a picture (:math:`\bar w = \frac1H \sum_h w_h`); the
viewer keeps them. A record that is not an :class:`AttentionRecord` (a plain
dict) carries no declarations: a key there has the kind that every module of
:mod:`pointsam.nn` returning that key declares for it (:data:`PLAIN_KINDS`:
``point``, ``channel``, ``axis`` ..., not ``attn`` or ``a``, whose kind
depends on the module); any other key is undeclared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import nn as pnn
from ..nn.base import AttentionRecord, PointModule, WeightKind
from .colors import to_numpy
from .render import Panel

__all__ = ["PLAIN_KINDS", "Weight", "AttentionMap", "LayerInputs", "layer_points",
           "repeated_weight", "branch_labels", "cloud_tokens", "rows_of", "take"]

# what the colour bar (or bar chart axis) of each picture measures
_VALUE_LABELS = {
    "point": "point gate m (sigmoid)",
    "channel": "channel gate w (sigmoid)",
    "neighbour": "weight (softmax over k)",
    "token": "weight (softmax over tokens)",
    "row": "weight (softmax over points)",
    "branch": "LAFF weight (softmax)",
    "level": "LAFF weight of new level",
    "axis": "axis weight - 1/3",
    "temporal": "weight (softmax over T k past points)",
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
        kind: What the picture shows: ``point``, ``channel``, ``axis``,
            ``neighbour``, ``token``, ``row``, ``branch``, ``level``,
            ``temporal`` or ``mean`` (:data:`VIEWS` says which weight kind gives which).
        title: Human-readable title.
        panels: Point panels (empty for a bar chart).
        bars: Bar heights ``[C]`` (channel weights) or ``None``.
        vmin: Low end of the colour scale (``None``: from the data).
        vmax: High end of the colour scale.
        cmap: Matplotlib colour map of the panels (a diverging one for a
            scale centred on a reference value).
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
    cmap: str = "viridis"
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


# ----------------------------------------------------------------- reading a record
@dataclass
class Weight:
    """One recorded weight to show: where it was recorded and what it is.

    Attributes:
        layer: The module that recorded it (qualified name).
        key: Its name in the module's dict.
        kind: Its kind (the outermost declaration; ``None``: undeclared).
        tensor: The weight.
        tables: Everything the module recorded in the same call.
    """

    layer: str
    key: str
    kind: WeightKind | None
    tensor: Tensor
    tables: Mapping[str, Tensor]

    @property
    def label(self) -> str:
        """The layer's name in titles (``model`` for the root)."""
        return self.layer or "model"

    def table(self, name: str) -> Tensor | None:
        """The table ``name`` (``nbr_idx``, ``centres``, ``assign``) next to the
        weight: ``branches.1.nbr_idx`` for ``branches.1.attn``."""
        prefix = self.key.rsplit(".", 1)[0] + "." if "." in self.key else ""
        return self.tables.get(prefix + name)


def _plain_kinds() -> dict[str, WeightKind]:
    """Each key that the modules of :mod:`pointsam.nn` declare with one kind only."""
    seen: dict[str, set[WeightKind]] = {}
    for cls in vars(pnn).values():
        if isinstance(cls, type) and issubclass(cls, PointModule):
            for key, kind in cls.weight_kinds.items():
                seen.setdefault(key, set()).add(kind)
    return {key: kinds.pop() for key, kinds in sorted(seen.items()) if len(kinds) == 1}


#: the kinds of a record without declarations (a plain dict), from the keys
#: that mean one kind in every module of :mod:`pointsam.nn`
PLAIN_KINDS: Mapping[str, WeightKind] = _plain_kinds()


def _declared(record: Mapping[str, Any], name: str) -> Mapping[str, WeightKind]:
    if isinstance(record, AttentionRecord):
        return record.kinds.get(name, {})
    return PLAIN_KINDS


def _same(u: Any, t: Tensor) -> bool:
    return (isinstance(u, Tensor) and u.shape == t.shape and u.dtype == t.dtype
            and torch.equal(u, t))


def repeated_weight(record: Mapping[str, Mapping[str, Tensor]], name: str,
                    t: Tensor) -> bool:
    """Whether a layer inside ``name`` recorded the same weights (composites)."""
    for other in record:
        if other != name and (other.startswith(name + ".") or name == ""):
            if any(_same(u, t) for u in record[other].values()):
                return True
    return False


def _outer_kind(record: Mapping[str, Mapping[str, Tensor]], name: str,
                t: Tensor) -> WeightKind | None:
    """The kind that the outermost module re-exporting ``t`` declares for it."""
    parts = name.split(".") if name else []
    outer = [""] + [".".join(parts[:i]) for i in range(1, len(parts))] if name else []
    for anc in outer:
        if anc not in record:
            continue
        kinds = _declared(record, anc)
        for key, u in record[anc].items():
            if key in kinds and _same(u, t):
                return kinds[key]
    return None


def branch_labels(record: Mapping[str, Mapping[str, Tensor]], layer: str, m: int,
                  given: Mapping[str, Sequence[str]]) -> list[str]:
    """The names of the ``m`` inputs of ``layer``'s fusion weights.

    ``given`` names of the layer or its parent, else the names that the layer
    or its parent declares (AxialAttention: x, y, z), else ``branch i``.
    """
    parent = layer.rsplit(".", 1)[0] if "." in layer else ""
    names = list(given.get(layer, ())) or list(given.get(parent, ()))[:m]
    if names:
        return names
    declared = record.branch_names if isinstance(record, AttentionRecord) else {}
    for n in (layer, parent):
        if len(declared.get(n, ())) == m:
            return list(declared[n])
    return [f"branch {i}" for i in range(m)]


def cloud_tokens(centres: Tensor, batch: np.ndarray | None, n_rows: int, m_max: int,
                 cloud: int) -> tuple[np.ndarray, int]:
    """The token centres ``[M_b, 3]`` of cloud ``cloud`` and the index of its
    first token: each cloud has ``min(N_b, M_max)`` of the ``centres``."""
    cen = to_numpy(centres, np.float64)  # [S, 3]
    counts = (np.bincount(batch, minlength=cloud + 1) if batch is not None
              else np.array([n_rows]))  # [B]
    m_b = np.minimum(counts, m_max)  # [B]
    off = int(m_b[:cloud].sum())
    return cen[off:off + int(m_b[cloud])], off  # [M_b, 3]


# ----------------------------------------------------------------- where rows live
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


def rows_of(batch: np.ndarray | None, cloud: int) -> slice | np.ndarray | None:
    """The rows of cloud ``cloud``: ``None`` (every row), a slice (contiguous
    rows, as in a sorted batch) or indices; the first two index without a copy."""
    if batch is None:
        return None
    idx = np.flatnonzero(batch == cloud)
    if len(idx) == len(batch):
        return None
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def take(a: np.ndarray, idx: slice | np.ndarray | None) -> np.ndarray:
    """The rows ``idx`` of ``a`` (:func:`rows_of`); a view unless ``idx`` is indices."""
    return a if idx is None else a[idx]


# ----------------------------------------------------------------- pictures
