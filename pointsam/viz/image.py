r"""2D drawing in NumPy: legends, bar charts, titles, layout and PNG files.

Images are ``uint8`` arrays ``[H, W, 3]``. Nothing here needs matplotlib; PNGs are
written and read through :mod:`open3d.io` (imported when called).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._font import GLYPH_H, draw_text, text_width
from .colors import colormap, to_numpy

__all__ = ["canvas", "colorbar", "swatches", "bar_chart", "titled", "grid",
           "fit", "write_png", "read_png", "fmt"]

WHITE = (255, 255, 255)
INK = (30, 30, 30)


def canvas(height: int, width: int, color: Sequence[int] = WHITE) -> np.ndarray:
    """A blank ``[height, width, 3]`` uint8 image."""
    img = np.empty((max(height, 0), max(width, 0), 3), dtype=np.uint8)
    img[...] = np.asarray(color, dtype=np.uint8)
    return img


def fmt(v: float) -> str:
    """A short number for a legend: ``0.25``, ``1.2E-3``, ``350``."""
    if v == 0 or 1e-2 <= abs(v) < 1e4:
        s = f"{v:.3g}"
    else:
        s = f"{v:.1e}".replace("e-0", "e-").replace("e+0", "e")
    return s.upper()


def colorbar(width: int, vmin: float, vmax: float, *, cmap: str = "viridis",
             label: str = "", height: int = 24) -> np.ndarray:
    r"""A horizontal colour bar with its range written at both ends.

    Shapes:
        - **output:** :math:`(height, width, 3)` uint8

    Example:
        >>> colorbar(200, 0.0, 1.0, label="weight").shape
        (24, 200, 3)
    """
    img = canvas(height, width)
    lo_s, hi_s = fmt(vmin), fmt(vmax)
    pad = 4
    left = pad + text_width(lo_s) + 4
    right = width - pad - text_width(hi_s) - 4
    bar_h = max(height - GLYPH_H - 6, 4)
    ty = (height - GLYPH_H) // 2 if not label else 2
    by = height - bar_h - 2 if label else (height - bar_h) // 2
    if right - left >= 8:
        t = np.linspace(vmin, vmax, right - left)
        rgb = (colormap(t, vmin, vmax, cmap=cmap) * 255).round().astype(np.uint8)
        img[by:by + bar_h, left:right] = rgb[None]  # [bar_h, L, 3]
        draw_text(img, lo_s, pad, by + (bar_h - GLYPH_H) // 2, INK)
        draw_text(img, hi_s, right + 4, by + (bar_h - GLYPH_H) // 2, INK)
    if label:
        draw_text(img, label, max((width - text_width(label)) // 2, 0), ty - 2 + 1, INK)
    return img


def swatches(width: int, items: Sequence[tuple[str, Sequence[float]]], *,
             height: int = 24) -> np.ndarray:
    """A legend row of coloured squares with names (classes, axes, markers).

    ``items`` are ``(name, rgb in [0, 1])``; items that do not fit are dropped
    and replaced by ``...``.

    Example:
        >>> swatches(120, [("x", (1, 0, 0)), ("y", (0, 1, 0))]).shape
        (24, 120, 3)
    """
    img = canvas(height, width)
    x, s = 4, min(GLYPH_H + 3, height - 4)
    y = (height - s) // 2
    for i, (name, rgb) in enumerate(items):
        w = s + 3 + text_width(name) + 8
        if x + w > width - (text_width("...") + 4 if i < len(items) - 1 else 0):
            draw_text(img, "...", x, (height - GLYPH_H) // 2, INK)
            break
        img[y:y + s, x:x + s] = (np.clip(np.asarray(rgb, float), 0, 1) * 255).round()
        draw_text(img, name, x + s + 3, (height - GLYPH_H) // 2, INK)
        x += w
    return img


def bar_chart(values: object, width: int = 320, height: int = 160, *,
              vmin: float = 0.0, vmax: float = 1.0, title: str = "",
              cmap: str = "viridis", labels: Sequence[str] | None = None
              ) -> np.ndarray:
    r"""A bar chart drawn with NumPy, bars coloured by value (per-channel gates).

    Bar :math:`c` has height :math:`(w_c - v_{min}) / (v_{max} - v_{min})` of the
    plot area and the colour of :math:`w_c` in ``cmap``, so a bar chart and the
    point renders next to it share one scale.

    Args:
        values: Weights ``[C]``.
        width: Image width in pixels.
        height: Image height in pixels.
        vmin: Value at the axis. (default: 0)
        vmax: Value at the top of the plot. (default: 1, the range of a sigmoid gate)
        title: Text above the plot.
        cmap: Colour map of the bars.
        labels: Optional name per bar (written under the axis when they fit;
            otherwise the channel index of every tenth bar is).

    Shapes:
        - **input:** :math:`(C)`
        - **output:** :math:`(height, width, 3)` uint8

    Example:
        >>> bar_chart(np.linspace(0, 1, 32), 200, 100).shape
        (100, 200, 3)
    """
    v = to_numpy(values, np.float64).reshape(-1)
    if v.size == 0:
        raise ValueError("bar_chart needs at least one value")
    if not vmax > vmin:
        raise ValueError(f"vmax ({vmax}) must be above vmin ({vmin})")
    img = canvas(height, width)
    top = 4 + (GLYPH_H + 4 if title else 0)
    left_lbl = max(text_width(fmt(vmax)), text_width(fmt(vmin)))
    x0, x1 = left_lbl + 8, width - 4
    y0, y1 = top, height - GLYPH_H - 6
    if title:
        draw_text(img, title, max((width - text_width(title)) // 2, 0), 3, INK)
    if x1 - x0 < v.size or y1 - y0 < 8:
        raise ValueError(f"a {width}x{height} bar chart is too small for {v.size} "
                         "bars")
    t = np.clip((np.nan_to_num(v, nan=vmin) - vmin) / (vmax - vmin), 0, 1)
    rgb = (colormap(v, vmin, vmax, cmap=cmap) * 255).round().astype(np.uint8)
    edges = np.linspace(x0, x1, v.size + 1).round().astype(int)
    gap = 1 if (x1 - x0) / v.size >= 3 else 0
    for c in range(v.size):
        h = int(round(t[c] * (y1 - y0)))
        if h > 0:
            img[y1 - h:y1, edges[c]:max(edges[c + 1] - gap, edges[c] + 1)] = rgb[c]
    img[y1:y1 + 1, x0:x1] = INK          # x axis
    img[y0:y1 + 1, x0 - 1:x0] = INK      # y axis
    draw_text(img, fmt(vmax), 2, y0, INK)
    draw_text(img, fmt(vmin), 2, y1 - GLYPH_H, INK)
    ty = y1 + 3
    if labels is not None and len(labels) == v.size and all(
            text_width(s) <= edges[i + 1] - edges[i] for i, s in enumerate(labels)):
        for i, s in enumerate(labels):
            draw_text(img, s, edges[i], ty, INK)
    else:
        step = max(1, int(np.ceil(v.size / max((x1 - x0) // 24, 1))))
        step = int(np.ceil(step / 5) * 5) if step > 1 else 1
        for c in range(0, v.size, step):
            draw_text(img, str(c), edges[c], ty, INK)
    return img


def titled(img: np.ndarray, title: str, *, size: int = 14) -> np.ndarray:
    """``img`` with a strip of ``size`` pixels on top holding ``title``."""
    strip = canvas(size, img.shape[1])
    draw_text(strip, title, max((img.shape[1] - text_width(title)) // 2, 2),
              (size - GLYPH_H) // 2, INK)
    return np.concatenate([strip, img], axis=0)


def grid(rows: Sequence[Sequence[np.ndarray]], *, pad: int = 2) -> np.ndarray:
    """Tiles laid out row by row on white, each row left-aligned."""
    rows = [list(r) for r in rows if len(r)]
    if not rows:
        raise ValueError("grid needs at least one tile")
    heights = [max(t.shape[0] for t in r) for r in rows]
    widths = [sum(t.shape[1] for t in r) + pad * (len(r) - 1) for r in rows]
    out = canvas(sum(heights) + pad * (len(rows) - 1), max(widths))
    y = 0
    for r, h in zip(rows, heights):
        x = 0
        for t in r:
            out[y:y + t.shape[0], x:x + t.shape[1]] = t
            x += t.shape[1] + pad
        y += h + pad
    return out


def fit(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Crop or pad (white) ``img`` to exactly ``[height, width, 3]``."""
    out = canvas(height, width)
    h, w = min(height, img.shape[0]), min(width, img.shape[1])
    out[:h, :w] = img[:h, :w]
    return out


def write_png(path: str | Path, img: np.ndarray) -> Path:
    """Write a ``[H, W, 3]`` uint8 image as PNG (through :mod:`open3d.io`)."""
    import open3d as o3d

    path = Path(path)
    img = np.ascontiguousarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"write_png needs [H, W, 3] uint8, got {img.dtype} "
                         f"{img.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not o3d.io.write_image(str(path), o3d.geometry.Image(img)):
        raise OSError(f"could not write PNG {path}")
    return path


def read_png(path: str | Path) -> np.ndarray:
    """Read a PNG written by :func:`write_png` back as ``[H, W, 3]`` uint8."""
    import open3d as o3d

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image at {path}")
    img = np.asarray(o3d.io.read_image(str(path)))
    if img.size == 0:
        raise OSError(f"could not read image {path}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3].copy()
