r"""One call from a model and a cloud to the attention pictures of every layer.

:func:`visualize` runs the model once on one cloud under
:func:`~pointsam.viz.capture` and :func:`~pointsam.viz.maps.capture_inputs`, turns
the weights into maps (:func:`~pointsam.viz.maps.attention_maps`) and writes,
for each map, a PNG (several views, colour bar, shared scale across the panels
of one map) and a PLY with the raw weights as per-point properties; then the
true and predicted labels (segmentation: two panels; classification: the class
names in the titles). :func:`write_demo_gallery` is what ``pointsam demo`` calls
at its end; ``pointsam viz`` (:mod:`pointsam.cli.viz`) calls :func:`visualize`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..nn.base import PointModule, record_attention
from .colors import PALETTE, label_colors, to_numpy
from .export import export_ply
from .figure import bar_chart, render_figure
from .maps import AttentionMap, attention_maps, capture_inputs, select_layers
from .render import Panel

__all__ = ["visualize", "write_demo_gallery", "render_map", "default_query",
           "run_model"]


def default_query(pos: Any) -> int:
    """The canonical query point: the one nearest the cloud's centroid."""
    p = to_numpy(pos, np.float64)
    return int(np.argmin(((p - p.mean(0)) ** 2).sum(1)))


def run_model(model: nn.Module, data: Any) -> tuple[torch.Tensor, Any, Any, Any]:
    """Run ``model`` on one ``Data`` cloud, recording weights and layer inputs.

    Returns:
        ``(logits, batch, record, inputs)``.
    """
    from torch_geometric.data import Batch

    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    batch = Batch.from_data_list([data]).to(device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), record_attention(model) as rec, \
                capture_inputs(model) as inputs:
            logits = model(batch)
    finally:
        model.train(was_training)
    return logits, batch, rec, inputs


def _branch_names(model: nn.Module) -> dict[str, list[str]]:
    """The names of the fused inputs that each module of ``model`` declares
    (:attr:`~pointsam.nn.PointModule.branch_names`: AxialAttention's x, y, z,
    a MultiBranchAttention's branch classes)."""
    return {name: list(m.branch_names) for name, m in model.named_modules()
            if isinstance(m, PointModule) and m.branch_names}


def render_map(amap: AttentionMap, out_dir: Path, *, size: tuple[int, int] = (640, 260),
               views: Sequence[str] = ("iso", "top"), up: str = "z",
               backend: str = "auto", ply: bool = True, suffix: str = "",
               fmt: str = "png") -> list[Path]:
    """Write one map's figure (``fmt``: png, svg or pdf) and the PLY of its raw
    weights; return the paths."""
    paths: list[Path] = []
    png = out_dir / f"{amap.slug}.{_fmt(fmt)}"
    if amap.bars is not None:
        w, h = size
        bar_chart(amap.bars, w, max(h * 2 // 3, 120), vmin=amap.vmin or 0.0,
                  vmax=amap.vmax if amap.vmax is not None else 1.0,
                  title=amap.title + suffix, value_label=amap.value_label, out=png)
        paths.append(png)
        return paths
    h = size[1] if len(amap.panels) == 1 else max(size[1], 140 * len(amap.panels) + 60)
    render_figure(amap.panels, png, size=(size[0], h), views=views,
                  title=amap.title + suffix, vmin=amap.vmin, vmax=amap.vmax,
                  cmap=amap.cmap, value_label=amap.value_label, up=up,
                  backend=backend)
    paths.append(png)
    if ply and amap.raw and amap.raw_pos is not None:
        paths.append(export_ply(out_dir / f"{amap.slug}.ply", amap.raw_pos,
                                weights=amap.raw, cmap=amap.cmap, vmin=amap.vmin,
                                vmax=amap.vmax))
    return paths


def _fmt(fmt: str) -> str:
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"fmt must be 'png', 'svg' or 'pdf', got {fmt!r}")
    return fmt


def _category_parts(data: Any, category_parts: Sequence[Sequence[int]]
                    ) -> tuple[list[int], int]:
    """``(part ids of data.category's category, largest part id of any category)``."""
    parts = [[int(p) for p in ps] for ps in category_parts]
    if not parts or not all(parts):
        raise ValueError("category_parts must list at least one part for each "
                         "category")
    if min(min(ps) for ps in parts) < 0:
        raise ValueError("category_parts holds a negative part id")
    cat_t = getattr(data, "category", None)
    if not isinstance(cat_t, torch.Tensor) or cat_t.numel() != 1:
        raise ValueError("part segmentation needs the shape's category as "
                         "data.category (one value)")
    cat = int(cat_t.reshape(-1)[0])
    if not 0 <= cat < len(parts):
        raise ValueError(f"category must be in 0..{len(parts) - 1}, got {cat}")
    return parts[cat], max(max(ps) for ps in parts)


def visualize(model: nn.Module, data: Any, out_dir: str | Path, *,
              layer: str | None = None, query: int | None = None,
              class_names: Sequence[str] | None = None, task: str | None = None,
              size: tuple[int, int] = (640, 260), views: Sequence[str] = ("iso", "top"),
              up: str = "z", backend: str = "auto", ply: bool = True,
              max_maps: int | None = None,
              category_parts: Sequence[Sequence[int]] | None = None,
              fmt: str = "png") -> list[Path]:
    r"""Draw every attention weight of one forward pass on one cloud.

    Args:
        model: A pointsam model (``model(batch) -> logits``).
        data: One PyG ``Data`` with ``pos`` (and ``x``, ``y``, ``category`` as
            the model needs).
        out_dir: Folder for the PNGs and PLYs (created).
        layer: Only this layer (a module name, its prefix or a glob).
        query: Query point for neighbour and token maps (index into
            ``data.pos``; default: :func:`default_query`).
        class_names: Names of the classes, for titles and legends.
        task: ``cls``, ``seg``, ``partseg`` or ``semseg`` (default: ``cls`` or
            ``seg`` from the logits' shape).
        size: ``(width, height)`` of each PNG.
        views: Views per figure.
        up: ``"z"`` or ``"y"``.
        backend: Renderer (``"auto"``, ``"open3d"``, ``"numpy"``).
        ply: Also write PLYs with the raw weights.
        max_maps: Keep at most this many maps (the first ones).
        category_parts: Part segmentation: the global part ids of each category
            (the checkpoint's ``meta["category_parts"]``). The predicted label of
            a point is then restricted to its shape's category
            :math:`c` = ``data.category``, as evaluation does:
            :math:`\hat y_i = \arg\max_{l \in \mathcal{P}(c)} z_{il}`.
            Required when ``task="partseg"``.
        fmt: Figure format: ``png`` (default), ``svg`` or ``pdf``.

    Returns:
        The files written, figures and PLYs.

    Raises:
        ValueError: ``layer`` names no recorded layer (the message lists them);
            an unknown ``task``; part segmentation without ``category_parts`` or
            ``data.category``, or with a category or part id out of range.
    """
    if task not in (None, "cls", "seg", "partseg", "semseg"):
        raise ValueError(f"task must be 'cls', 'seg', 'partseg' or 'semseg', "
                         f"got {task!r}")
    if task == "partseg" and category_parts is None:
        raise ValueError("task='partseg' needs category_parts (the part ids of "
                         "each category) to restrict the predictions")
    own = None if category_parts is None else _category_parts(data, category_parts)
    ext = _fmt(fmt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pos = data.pos
    n = pos.size(0)
    q = default_query(pos) if query is None else int(query)
    if not 0 <= q < n:
        raise ValueError(f"--query {q} is out of range: the cloud has {n} points")
    logits, _, rec, inputs = run_model(model, data)
    logits = logits.float().cpu()
    names = list(class_names) if class_names is not None else None
    if task is None:
        task = "cls" if logits.dim() == 2 and logits.size(0) == 1 and n != 1 else "seg"

    def cname(i: int) -> str:
        return names[i] if names is not None and 0 <= i < len(names) else str(i)

    suffix = ""
    y = getattr(data, "y", None)
    if task == "cls":
        pred = int(logits.argmax(-1)[0])
        true = int(y.reshape(-1)[0]) if isinstance(y, torch.Tensor) and y.numel() else None
        suffix = f" | pred {cname(pred)}" + (f", true {cname(true)}" if true is not None
                                               else "")
    layers = select_layers(list(rec), layer)
    maps = attention_maps(rec, inputs, pos, None, query=q, layers=layers,
                          branch_names=_branch_names(model))
    if max_maps is not None:
        maps = maps[:max_maps]
    paths: list[Path] = []
    for amap in maps:
        paths += render_map(amap, out, size=size, views=views, up=up, backend=backend,
                            ply=ply, suffix=suffix, fmt=ext)
    if task != "cls" and logits.dim() == 2 and logits.size(0) == n:
        if own is not None:  # part segmentation: only the category's parts
            parts, top = own
            if top >= logits.size(1):
                raise ValueError(f"category_parts names part {top} but the model "
                                 f"gives {logits.size(1)} logits per point")
            allowed = torch.zeros(logits.size(1), dtype=torch.bool)  # [P]
            allowed[parts] = True
            logits = logits.masked_fill(~allowed, float("-inf"))  # [N, P]
        pred_lab = logits.argmax(-1).numpy()  # [N]
        panels = []
        shown = set(pred_lab.tolist())
        if isinstance(y, torch.Tensor) and y.numel() == n:
            true_lab = y.reshape(-1).long().numpy()
            shown |= set(true_lab.tolist())
            panels.append(Panel(pos, colors=label_colors(true_lab), title="true labels"))
        panels.append(Panel(pos, colors=label_colors(pred_lab), title="predicted"))
        legend = [(cname(c), PALETTE[c % len(PALETTE)]) for c in sorted(shown) if c >= 0]
        panels[0].legend = legend
        png = out / f"labels.{ext}"
        render_figure(panels, png, size=(size[0], max(size[1], 140 * len(panels) + 40)),
                      views=views, title="labels", up=up, backend=backend)
        paths.append(png)
        if ply:
            paths.append(export_ply(
                out / "labels.ply", pos, colors=label_colors(pred_lab),
                labels=true_lab if len(panels) == 2 else None, pred=pred_lab))
    elif task == "cls":
        png = out / f"input.{ext}"
        render_figure([Panel(pos, values=None)], png, size=size, views=views,
                      title="input" + suffix, up=up, backend=backend)
        paths.append(png)
    return paths


def write_demo_gallery(model: nn.Module, dataset: Any, out_dir: str | Path, *,
                       index: int = 0, **kwargs: Any) -> list[Path]:
    """The demo's attention pictures: :func:`visualize` on ``dataset[index]``.

    Class names come from the dataset (``class_names`` or ``classes``) when it
    has them; so does, for part segmentation (a sample with ``category``), the
    category -> parts table (``category_parts`` or ``seg_classes``) that
    restricts the predicted labels. Keyword arguments go to :func:`visualize`.

    Returns:
        The files written.
    """
    if len(dataset) == 0:
        raise ValueError("write_demo_gallery needs a non-empty dataset")
    data = dataset[index]
    names = kwargs.pop("class_names", None)
    if names is None:
        for attr in ("class_names", "classes"):
            v = getattr(dataset, attr, None)
            if isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v):
                names = list(v)
                break
    if "category_parts" not in kwargs and "category" in data:
        for attr in ("category_parts", "seg_classes"):
            v = getattr(dataset, attr, None)
            if isinstance(v, dict):
                v = list(v.values())
            if isinstance(v, (list, tuple)) and v:
                kwargs["category_parts"] = [list(map(int, p)) for p in v]
                break
    return visualize(model, data, out_dir, class_names=names, **kwargs)
