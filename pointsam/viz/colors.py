r"""Colour maps: scalar weights, class labels and axis weights to RGB.

Colour tables come from matplotlib (every named colour map); the maths is
NumPy and returns float RGB in :math:`[0, 1]`, shape ``[N, 3]``.

- :func:`colormap`: a scalar weight :math:`w` to a colour of a colour map
  (default viridis, perceptually uniform). With :math:`t = \mathrm{clip}((w - v_{min}) / (v_{max} - v_{min}),
  0, 1)` the colour is the table entry at :math:`t \cdot 255`, linearly
  interpolated. ``NaN`` marks "no value" and gets :data:`GREY`.
- :func:`value_range`: one ``(vmin, vmax)`` over several arrays, so that compared
  panels share one scale.
- :func:`label_colors`: a categorical palette (20 distinct colours, then cycled).
- :func:`axis_colors`: per-point axis weights ``[N, 3]`` (x, y, z) as red, green,
  blue (normalised to sum 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np

__all__ = ["VIRIDIS", "GREY", "QUERY_COLOR", "PALETTE", "colormap", "value_range",
           "label_colors", "axis_colors", "to_numpy", "cmap_table", "mpl_cmap"]


def mpl_cmap(name: str) -> Any:
    """The matplotlib colour map ``name`` (a clear error for an unknown one)."""
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown cmap {name!r}; any matplotlib colour map works, "
                         f"for example {', '.join(_COMMON)}") from None


_COMMON = ("viridis", "plasma", "inferno", "magma", "cividis", "turbo", "gray",
           "viridis_r")


@lru_cache(maxsize=64)
def cmap_table(name: str, n: int = 256) -> np.ndarray:
    """``[n, 3]`` float64 RGB samples of the matplotlib colour map ``name``."""
    t = np.asarray(mpl_cmap(name)(np.linspace(0.0, 1.0, n))[:, :3], dtype=np.float64)
    t.setflags(write=False)
    return t


#: The viridis table (matplotlib's), float64 ``[256, 3]``.
VIRIDIS: np.ndarray = cmap_table("viridis")

#: Colour of points without a value (``NaN``): the "rest" around a query.
GREY: tuple[float, float, float] = (0.78, 0.78, 0.78)
#: Colour of a marked query point (outside viridis, so it never reads as a weight).
QUERY_COLOR: tuple[float, float, float] = (0.91, 0.12, 0.39)

# Tableau's 10 colours, then their light variants (the "tab20" values).
_PALETTE_HEX = ("1f77b4 ff7f0e 2ca02c d62728 9467bd 8c564b e377c2 7f7f7f bcbd22 "
                "17becf aec7e8 ffbb78 98df8a ff9896 c5b0d5 c49c94 f7b6d2 c7c7c7 "
                "dbdb8d 9edae5")
#: Categorical palette, float ``[20, 3]``.
PALETTE: np.ndarray = np.array(
    [[int(h[i:i + 2], 16) / 255.0 for i in (0, 2, 4)] for h in _PALETTE_HEX.split()])
PALETTE.setflags(write=False)


def to_numpy(a: object, dtype: type | None = None) -> np.ndarray:
    """A tensor (any device, any dtype, with or without grad) or array as NumPy."""
    if hasattr(a, "detach"):
        t = a.detach().cpu()  # type: ignore[attr-defined]
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        a = t.numpy()
    arr = np.asarray(a)
    return arr.astype(dtype) if dtype is not None else arr


def value_range(*values: object, vmin: float | None = None,
                vmax: float | None = None) -> tuple[float, float]:
    r"""One ``(vmin, vmax)`` over all finite entries of several arrays.

    Given bounds are kept; missing ones come from the data. An empty or constant
    input gives a range of width 1 around its value, so that a colour map never
    divides by zero.

    Example:
        >>> value_range(np.array([0.2, 0.5]), np.array([0.1, np.nan, 0.9]))
        (0.1, 0.9)
        >>> value_range(np.array([0.2, 0.5]), vmin=0.0)
        (0.0, 0.5)
    """
    lo, hi = vmin, vmax
    if lo is None or hi is None:
        finite = [v[np.isfinite(v)] for v in (to_numpy(x, np.float64).ravel()
                                              for x in values)]
        finite = [f for f in finite if f.size]
        if lo is None:
            lo = float(min(f.min() for f in finite)) if finite else 0.0
        if hi is None:
            hi = float(max(f.max() for f in finite)) if finite else 1.0
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"vmin and vmax must be finite, got {lo}, {hi}")
    if hi < lo:
        raise ValueError(f"vmax ({hi}) is below vmin ({lo})")
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    return float(lo), float(hi)


def colormap(values: object, vmin: float | None = None, vmax: float | None = None,
             cmap: str | np.ndarray = "viridis",
             nan_color: Iterable[float] = GREY) -> np.ndarray:
    r"""Scalar weights to RGB through a colour table.

    .. math::
        t_i = \mathrm{clip}\Big(\frac{w_i - v_{min}}{v_{max} - v_{min}}, 0, 1\Big),
        \quad \mathrm{rgb}_i = \mathrm{lerp}(\mathrm{table}, 255\, t_i)

    Args:
        values: Weights ``[N]`` (tensor or array; ``[N, 1]`` is flattened).
            ``NaN`` marks a point without a value.
        vmin: Weight shown as the first colour (default: the finite minimum).
        vmax: Weight shown as the last colour (default: the finite maximum).
        cmap: A matplotlib colour map name (default ``"viridis"``), or a
            table ``[L, 3]`` in :math:`[0, 1]`.
        nan_color: RGB for ``NaN`` entries. (default: :data:`GREY`)

    Shapes:
        - **input:** :math:`(N)` or :math:`(N, 1)`
        - **output:** :math:`(N, 3)` float64 in :math:`[0, 1]`

    Example:
        >>> rgb = colormap(np.array([0.0, 0.5, 1.0, np.nan]))
        >>> rgb.shape, bool(np.allclose(rgb[0], VIRIDIS[0])), rgb[3].tolist()
        ((4, 3), True, [0.78, 0.78, 0.78])
    """
    v = to_numpy(values, np.float64)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1:
        raise ValueError(f"values must be [N] or [N, 1], got shape {tuple(v.shape)}")
    table = cmap_table(cmap) if isinstance(cmap, str) else np.asarray(cmap, float)
    if table.ndim != 2 or table.shape[1] != 3 or len(table) < 2:
        raise ValueError(f"a cmap table must be [L>=2, 3], got {table.shape}")
    lo, hi = value_range(v, vmin=vmin, vmax=vmax)
    nan = ~np.isfinite(v)
    t = np.clip((np.where(nan, lo, v) - lo) / (hi - lo), 0.0, 1.0) * (len(table) - 1)
    i0 = np.floor(t).astype(np.int64)
    i1 = np.minimum(i0 + 1, len(table) - 1)
    f = (t - i0)[:, None]
    rgb = table[i0] * (1.0 - f) + table[i1] * f  # [N, 3]
    rgb[nan] = np.asarray(list(nan_color), dtype=np.float64)
    return rgb


def label_colors(labels: object, palette: np.ndarray | None = None,
                 ignore: int | None = None) -> np.ndarray:
    """Integer labels to colours of a categorical palette (cycled past its length).

    Args:
        labels: Class ids ``[N]``.
        palette: ``[L, 3]`` colours (default: :data:`PALETTE`, 20 colours).
        ignore: A label drawn in :data:`GREY` (for example an "unlabelled" id).

    Example:
        >>> label_colors(np.array([0, 1, 20])).round(3).tolist()[2] == PALETTE[0].round(3).tolist()
        True
    """
    lab = to_numpy(labels).reshape(-1)
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        if not np.all(np.isfinite(lab)) or not np.all(lab == np.round(lab)):
            raise ValueError("labels must be integers")
        lab = lab.astype(np.int64)
    pal = PALETTE if palette is None else np.asarray(palette, dtype=np.float64)
    rgb = pal[np.mod(lab, len(pal))].astype(np.float64)  # [N, 3]
    if ignore is not None:
        rgb[lab == ignore] = GREY
    return rgb


def axis_colors(weights: object) -> np.ndarray:
    r"""Per-point axis weights ``[N, 3]`` (x, y, z) as red, green, blue.

    .. math::
        \mathrm{rgb}_i = \mathbf{a}_i / \textstyle\sum_j a_{ij}

    The weights of :class:`~pointsam.nn.AxialAttention` already sum to 1, so a
    point that relies on one axis only is a pure primary colour and one with
    equal weights is a dark grey (1/3, 1/3, 1/3), visible on white.

    Example:
        >>> axis_colors(np.array([[1.0, 0.0, 0.0], [0.2, 0.2, 0.6]])).round(2).tolist()
        [[1.0, 0.0, 0.0], [0.2, 0.2, 0.6]]
    """
    w = to_numpy(weights, np.float64)
    if w.ndim != 2 or w.shape[1] != 3:
        raise ValueError(f"axis weights must be [N, 3], got shape {tuple(w.shape)}")
    w = np.clip(np.nan_to_num(w, nan=0.0), 0.0, None)
    s = w.sum(axis=1, keepdims=True)  # [N, 1]
    return np.where(s > 0, w / np.where(s > 0, s, 1.0), 1.0 / 3.0)
