r"""The figure of a multi-seed sweep (``results.png``): the task's metric
against model size and training cost, every configuration named once per
panel, clear of the other names, markers and error bars.

The rows come from :mod:`pointsam.engine.sweep_report` (``results.csv``); the
command composes the two (viz draws what it is given).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["sweep_figure", "short_names"]


def short_names(names: Sequence[str]) -> list[str]:
    """Names without their shared ``_``-separated prefix (for figure labels).

    Example:
        >>> short_names(["mn10_pn2_lite", "mn10_pn2_lite_cbam", "mn10_pn2_lite_axial"])
        ['lite', 'cbam', 'axial']
    """
    parts = [n.split("_") for n in names]
    k = 0
    while len(names) > 1 and all(len(p) > k and p[k] == parts[0][k] for p in parts):
        k += 1
    return ["_".join(p[k:]) or p[-1] for p in parts]


def sweep_figure(rows: list[dict[str, Any]], key: str, label: str) -> Any:
    """A sweep's metric ``key`` (named ``label``) against parameters and training
    time, mean ± std: ``results.png`` of ``pointsam sweep``.

    ``rows``: one dict per configuration as in ``results.csv`` (``config``,
    ``<metric>_mean``/``_std``, ``params``, ``train_time_s_mean``/``_std``,
    ``n_seeds``). The legend takes as many columns as fit the width; each
    marker is named beside it, clear of the other names, markers and error
    bars (:func:`_annotate`). Returns the matplotlib ``Figure``.
    """
    from .figure import new_figure

    fig = new_figure(1650, 720, dpi=150)  # 11 x 4.8 inches
    axes = fig.subplots(1, 2, sharey=True)
    markers = "osD^vP*Xph<>"
    colours = [f"C{i}" for i in range(10)]
    times = [r["train_time_s_mean"] for r in rows if not math.isnan(r["train_time_s_mean"])]
    minutes = bool(times) and max(times) >= 180
    unit = 60.0 if minutes else 1.0
    short = short_names([r["config"] for r in rows])
    labels: list[tuple[Any, float, float, float, float, int]] = []  # (axis, x, y, xe, ye, row)
    for i, r in enumerate(rows):
        y, ye = 100 * r[f"{key}_mean"], 100 * r[f"{key}_std"]
        if math.isnan(y):
            continue
        style = dict(marker=markers[i % len(markers)], color=colours[i % 10],
                     markersize=9, capsize=4, linestyle="none", elinewidth=1.5)
        ye = 0.0 if math.isnan(ye) else ye
        t, te = r["train_time_s_mean"] / unit, r["train_time_s_std"] / unit
        for ax, x, xe in ((axes[0], r["params"] / 1e3, 0.0),
                          (axes[1], t, 0.0 if math.isnan(te) else te)):
            ax.errorbar(x, y, yerr=ye, xerr=xe,
                        label=r["config"] if ax is axes[0] else None, **style)
            labels.append((ax, x, y, xe, ye, i))
    axes[0].set_xlabel("parameters (thousands)", fontsize=11)
    axes[1].set_xlabel("training time per run (" + ("minutes" if minutes else "s")
                       + ")", fontsize=11)
    axes[0].set_ylabel(f"test {label} (%)", fontsize=11)
    n = max((r["n_seeds"] for r in rows), default=0)
    fig.suptitle(f"Test {label} against size and cost: mean ± std over {n} seed(s)",
                 fontsize=12)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.margins(x=0.12, y=0.08)
        ax.tick_params(labelsize=10)
    renderer = fig.canvas.get_renderer()
    for ncol in range(min(len(rows), 4), 0, -1):  # as many columns as fit the width
        legend = fig.legend(loc="lower center", ncol=ncol, fontsize=10, frameon=False)
        if ncol == 1 or legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width:
            break
        legend.remove()
    lines = -(-len(rows) // ncol)
    fig.tight_layout(rect=(0, 0.08 + 0.05 * (lines - 1), 1, 1))
    _annotate(fig, labels, short, colours)
    return fig


def _annotate(fig: Any, labels: list[tuple[Any, float, float, float, float, int]],
              names: list[str], colours: list[str]) -> None:
    """Name each marker beside it (after the layout, in pixels).

    A name goes right of its marker, or left of it, inside the axes, where it
    covers no name already placed there (top to bottom) and no other
    configuration's marker or error bars (boxes around the marker and each bar);
    where neither side is free it moves down a line until one is, with a thin
    line back to its marker.
    """
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pt = fig.dpi / 72.0  # pixels per point
    bars: dict[Any, list[tuple[int, Any]]] = {}  # axis -> (row, box) obstacles
    for ax, x, y, xe, ye, i in labels:
        to_px = ax.transData.transform
        (x0, y0), (x1, y1) = to_px((x - xe, y - ye)), to_px((x + xe, y + ye))
        (cx, cy), m = to_px((x, y)), 5 * pt  # half a 9-point marker, and a margin
        bars.setdefault(ax, []).extend((i, Bbox.from_extents(*e)) for e in (
            (cx - m, cy - m, cx + m, cy + m),       # the marker
            (cx - 4 * pt, y0, cx + 4 * pt, y1),    # the vertical bar and its caps
            (x0, cy - 4 * pt, x1, cy + 4 * pt)))   # the horizontal bar

    def put(ax: Any, x: float, y: float, i: int, ha: str, line: int
            ) -> tuple[Any, Any, dict[str, Any]]:
        """Name ``i`` ``line`` lines down, right (``ha="left"``) or left of (x, y)."""
        dx = 18 if line else 6
        style = dict(xytext=(dx if ha == "left" else -dx, 5 - 11.0 * line), ha=ha,
                     fontsize=9, textcoords="offset points", color=colours[i % 10])
        text = ax.annotate(names[i], (x, y), **style)
        return text, text.get_window_extent(renderer), style

    placed: dict[Any, list[Any]] = {}
    for ax, x, y, _, _, i in sorted(labels, key=lambda t: -t[2]):  # top to bottom
        taken = placed.setdefault(ax, [])
        others = [b for j, b in bars[ax] if j != i]
        for line in range(len(labels) + 1):
            last = line == len(labels)  # nowhere free: the lowest line, inside
            for ha in ("left", "right"):  # right of the marker, else left of it
                text, box, style = put(ax, x, y, i, ha, line)
                inside = ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1
                if inside and (last or not any(box.overlaps(b) for b in taken + others)):
                    break
                text.remove()
            else:
                if not last:
                    continue
                text, box, style = put(ax, x, y, i, "left", line)
            taken.append(box)
            if line:  # the same text, with a line back to its marker
                text.remove()
                ax.annotate(names[i], (x, y), **style, arrowprops=dict(
                    arrowstyle="-", color=colours[i % 10], lw=0.6,
                    shrinkA=0, shrinkB=4))
            break
