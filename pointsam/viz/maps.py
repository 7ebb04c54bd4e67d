r"""From recorded attention weights to things to draw (:class:`AttentionMap`).

:func:`pointsam.viz.capture` (:func:`pointsam.nn.base.record_attention`) records
``module name -> {weight name -> Tensor}`` with the kind each module declares
for each weight; :func:`capture_inputs` records the ``pos`` and ``batch`` each
attention module saw (deep layers of a backbone run on fewer, subsampled
points). :func:`attention_maps` turns both into maps, one per weight, drawn as the
picture column of :data:`pointsam.viz.kind_views.VIEWS` says for the weight's kind
(the table that :func:`~pointsam.viz.build_scene` shares; the module
docstring of :mod:`pointsam.viz.kinds` lists it).

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
from typing import Any

import numpy as np
from torch import Tensor, nn

from ..nn.base import PointModule
from .colors import to_numpy
from .kind_views import PictureFrame, recorded_weights, view_of
from .kinds import AttentionMap, LayerInputs

__all__ = ["AttentionMap", "LayerInputs", "capture_inputs", "attention_maps",
           "select_layers"]


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


def attention_maps(record: Mapping[str, Mapping[str, Tensor]],
                   inputs: Mapping[str, LayerInputs], pos: Tensor,
                   batch: Tensor | None = None, *, query: int = 0, cloud: int = 0,
                   layers: Sequence[str] | None = None,
                   branch_names: Mapping[str, Sequence[str]] | None = None
                   ) -> list[AttentionMap]:
    r"""Draw recorded weights as maps of cloud ``cloud``, each by its kind's
    picture (:data:`pointsam.viz.kind_views.VIEWS`).

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
    if batch_in is not None and not (batch_in == cloud).any():
        raise ValueError(f"cloud {cloud} has no points")
    if batch_in is not None and batch_in[query] != cloud:
        raise ValueError(f"query {query} is in cloud {batch_in[query]}, not {cloud}")
    frame = PictureFrame(record, inputs, pos_in, batch_in, query, cloud,
                         branch_names or {})
    maps: list[AttentionMap] = []
    for wt in recorded_weights(record, list(record) if layers is None else layers):
        picture = view_of(wt.kind).picture
        amap = None if picture is None else picture(
            frame, wt, to_numpy(wt.tensor, np.float64))
        if amap is not None:
            amap.key = wt.key  # the weight it draws
            maps.append(amap)
    return maps
