r"""Attention per backbone stage: the name -> class table and the spec parser.

A backbone takes ``attention=`` in one of these forms (DESIGN.md section 4):

- ``None``: the plain reference backbone;
- a name from :data:`ATTENTION` (``"cbam"``), used at every stage;
- a class of :mod:`pointsam.nn` (``CBAM``), called as ``cls(channels)``;
- any callable ``factory(channels) -> nn.Module`` (``functools.partial(
  LocalAttention, num_heads=4)``);
- a dict ``{"name": "local_global", "num_heads": 4}`` (a name plus constructor
  keyword arguments, for YAML configs);
- a list with one entry per stage of any of the above, ``None`` for no attention
  at that stage; a list may also hold ready-made ``nn.Module`` instances.

Every module is called as ``module(x, pos, batch, nbr_idx, nbr_mask) -> [N, C]``
on the stage output, with the stage's neighbour table (computed once per stage),
except a :class:`~pointsam.nn.PointModule` that declares
``accepts_neighbours = False`` (AxialAttention builds its own anisotropic
tubes), which is called as ``module(x, pos, batch)``. Gates (modules that declare
``is_gate = True``: ChannelGate, PointGate, CBAM) rescale the features in place,
:math:`x \leftarrow g(x)`; every other module is added as a residual,
:math:`x \leftarrow x + f(x)`. Both facts are the protocol declared on
:class:`~pointsam.nn.PointModule`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from ..nn import (
    CBAM,
    AxialAttention,
    ChannelGate,
    GlobalPooledAttention,
    LocalAttention,
    LocalGlobalAttention,
    MultiHeadPointAttention,
    PointGate,
    PointModule,
)
from ..nn.base import is_gate, takes_neighbours

__all__ = ["ATTENTION", "GATES", "AttentionSpec", "build_attention", "is_gate",
           "apply_attention"]

#: names understood in configs -> attention class of :mod:`pointsam.nn`
ATTENTION: dict[str, type[PointModule]] = {
    "channel": ChannelGate,
    "point": PointGate,
    "cbam": CBAM,
    "local": LocalAttention,
    "global": GlobalPooledAttention,
    "local_global": LocalGlobalAttention,
    "axial": AxialAttention,
    "mhsa": MultiHeadPointAttention,
}
#: the gate classes of the table (``is_gate = True``): ``x = gate(x)``, no residual
GATES: tuple[type[PointModule], ...] = tuple(
    c for c in ATTENTION.values() if c.is_gate)

AttentionSpec = (str | type | Callable[[int], nn.Module] | nn.Module
                 | Mapping[str, Any] | Sequence[Any] | None)


def _valid() -> str:
    return (f"valid names: {sorted(ATTENTION)}, None, a class or factory "
            f"f(channels) -> nn.Module, a dict {{'name': ..., **kwargs}}, "
            f"or a list of these with one entry per stage")


def _one(spec: Any, channels: int, stage: int) -> nn.Module | None:
    if spec is None:
        return None
    if isinstance(spec, nn.Module):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key in ("none", "null", ""):
            return None
        if key not in ATTENTION:
            raise ValueError(f"unknown attention {spec!r} for stage {stage}; "
                             + _valid())
        return ATTENTION[key](channels)
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        if not isinstance(name, str) or name.lower() not in ATTENTION:
            raise ValueError(f"attention dict for stage {stage} needs a 'name' in "
                             f"{sorted(ATTENTION)}, got {name!r}")
        return ATTENTION[name.lower()](channels, **kwargs)
    if callable(spec):
        module = spec(channels)
        if not isinstance(module, nn.Module):
            raise ValueError(f"attention factory for stage {stage} returned "
                             f"{type(module).__name__}, not an nn.Module")
        return module
    raise ValueError(f"bad attention spec {spec!r} for stage {stage}; " + _valid())


def build_attention(spec: AttentionSpec, channels: Sequence[int],
                    num_stages: int | None = None) -> list[nn.Module | None]:
    r"""One attention module (or ``None``) per stage from a spec.

    Args:
        spec: See the module docstring: ``None``, a name, a class, a factory, a
            dict, or a list with one entry per stage.
        channels: Output channels of each stage; the module of stage s is built
            for ``channels[s]`` (it must keep that width).
        num_stages: Number of stages (default ``len(channels)``).

    Returns:
        A list of ``num_stages`` modules or ``None``.

    Raises:
        ValueError: An unknown name, a list of the wrong length, or a spec of an
            unknown type; the message lists the valid choices.

    Example:
        >>> mods = build_attention([None, "cbam"], [32, 64])
        >>> mods[0] is None, type(mods[1]).__name__
        (True, 'CBAM')
        >>> build_attention("nope", [32])
        Traceback (most recent call last):
        ...
        ValueError: unknown attention 'nope' for stage 0; valid names: [...
    """
    channels = list(channels)
    n = len(channels) if num_stages is None else num_stages
    if len(channels) != n:
        raise ValueError(f"channels has {len(channels)} entries for {n} stages")
    if isinstance(spec, (list, tuple)):
        if len(spec) != n:
            raise ValueError(f"attention list has {len(spec)} entries but the "
                             f"backbone has {n} stages (one entry per stage, None "
                             f"for no attention); " + _valid())
        specs = list(spec)
    else:
        if isinstance(spec, nn.Module) and n > 1:
            raise ValueError("one nn.Module instance cannot serve several stages "
                             "(it would share weights and a width); pass a class, "
                             "a factory or a list of instances")
        specs = [spec] * n
    return [_one(s, c, i) for i, (s, c) in enumerate(zip(specs, channels))]


def apply_attention(module: nn.Module | None, x: Any, pos: Any, batch: Any,
                    nbr_idx: Any, nbr_mask: Any) -> Any:
    r"""Run a stage's attention: ``g(x)`` for a gate, ``x + f(x)`` otherwise.

    The stage's table ``nbr_idx``/``nbr_mask`` is passed on, except to modules that
    declare ``accepts_neighbours = False`` (AxialAttention's anisotropic tubes).
    """
    if module is None:
        return x
    if takes_neighbours(module):
        out = module(x, pos, batch, nbr_idx, nbr_mask)  # [N, C]
    else:
        out = module(x, pos, batch)  # [N, C]
    if out.shape != x.shape:
        raise ValueError(f"attention {type(module).__name__} returned "
                         f"{list(out.shape)} for input {list(x.shape)}; a stage's "
                         f"attention must keep the width")
    return out if is_gate(module) else x + out
