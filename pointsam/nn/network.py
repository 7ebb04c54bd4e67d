r"""The network half of a model: plain tensor ops on ``(x, pos, plan)``.

A backbone's forward is a geometry **plan** (every integer index and weight
derived from ``pos``/``batch`` alone, computed by :mod:`pointsam.ops` with any
backend, DESIGN.md section 9) followed by a **network** that only gathers,
multiplies and reduces. This module holds what the network side shares:

- :func:`network_mode`: the context in which a backbone runs its network. It
  carries the number of clouds and the tables of the attention modules that
  build their own neighbourhoods (:meth:`PointModule.plan_geometry`:
  AxialAttention's tubes, GlobalPooledAttention's tokens), so those modules read
  their indices instead of searching. A per-thread stack read in Python, so
  ``torch.export`` and ``torch.compile`` see only the tensors.
- segment reductions without a host sync (:func:`seg_sum`, :func:`seg_mean`,
  :func:`seg_max`: ``index_add`` / ``scatter_reduce``, the number of segments
  given), and dense padding through precomputed slots (:func:`dense_layout` on
  the plan side, :func:`to_dense_slots` / :func:`from_dense_slots` on the network
  side) instead of boolean-mask indexing, whose output size depends on values.
- :func:`tracing`: true while ``torch.export``/``torch.compile`` trace; the
  attention modules then take their plain (unchunked) path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .. import ops
from ..ops.segment import tracing

__all__ = ["network_mode", "in_network", "network_tables", "network_batch_size",
           "tracing", "dense_layout",
           "to_dense_slots", "from_dense_slots", "collect_geometry", "bind_geometry"]


@dataclass
class _State:
    batch_size: int
    tables: dict[int, dict[str, Tensor]] = field(default_factory=dict)


# A per-thread stack, not a ContextVar: torch.compile traces a network that
# enters the mode itself (ContextVar.set/get inside a compiled frame break the
# graph; reads and writes of a thread-local list do not).
_LOCAL = threading.local()


def _stack() -> list[_State]:
    st = getattr(_LOCAL, "stack", None)
    if st is None:
        st = _LOCAL.stack = []
    return st


@contextmanager
def network_mode(batch_size: int,
                 tables: Mapping[int, dict[str, Tensor]] | None = None
                 ) -> Iterator[None]:
    """Run the calls inside as a network: ``batch_size`` clouds, module tables
    keyed by ``id(module)`` (from :func:`bind_geometry`)."""
    stack = _stack()
    stack.append(_State(batch_size, dict(tables or {})))
    try:
        yield
    finally:
        stack.pop()


def in_network() -> bool:
    """Whether the current call runs inside :func:`network_mode`."""
    return bool(_stack())


def network_tables(module: nn.Module) -> dict[str, Tensor] | None:
    """The plan tables of ``module`` inside :func:`network_mode`, else ``None``."""
    stack = _stack()
    return stack[-1].tables.get(id(module)) if stack else None


def network_batch_size() -> int:
    """The number of clouds of the running network (1 outside :func:`network_mode`)."""
    stack = _stack()
    return stack[-1].batch_size if stack else 1


# --------------------------------------------------------------------- padding
def dense_layout(batch: Tensor, batch_size: int, min_width: int = 1
                 ) -> tuple[Tensor, Tensor]:
    r"""Plan side: where each row of a ragged tensor goes in a ``[B, W]`` padding.

    :math:`W = \max(\max_b n_b, \text{min\_width})`. Reads the counts (one host
    sync), so it belongs to the plan.

    Returns:
        ``(slot [N], mask [B, W])``: ``slot_i = b_i W + (i - \mathrm{ptr}_{b_i})``
        and the valid entries.

    Example:
        >>> slot, mask = dense_layout(torch.tensor([0, 1, 1]), 2)
        >>> slot.tolist(), mask.tolist()
        ([0, 2, 3], [[True, False], [True, True]])
    """
    if ops.fixed_batch_size() is not None:  # B clouds of n: constants of n
        return ops.fixed_layout(batch, batch_size, min_width)
    counts = torch.bincount(batch, minlength=batch_size)  # [B]
    w = max(int(counts.max()) if batch.numel() else 1, min_width)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])  # [B + 1]
    local = torch.arange(batch.numel(), device=batch.device) - ptr[batch]  # [N]
    slot = batch * w + local  # [N]
    mask = torch.arange(w, device=batch.device).unsqueeze(0) < counts.unsqueeze(1)
    return slot, mask  # [N], [B, W]


def to_dense_slots(x: Tensor, slot: Tensor, mask: Tensor,
                   fill_value: float = 0.0) -> Tensor:
    """Network side of :func:`dense_layout`: ``x`` [N, *] -> [B, W, *]."""
    b, w = mask.shape
    flat = x.new_full((b * w,) + tuple(x.shape[1:]), fill_value)
    return flat.index_copy(0, slot, x).view((b, w) + tuple(x.shape[1:]))


def from_dense_slots(dense: Tensor, slot: Tensor) -> Tensor:
    """Inverse of :func:`to_dense_slots`: [B, W, *] -> [N, *]."""
    return dense.flatten(0, 1).index_select(0, slot)


# --------------------------------------------------------------------- modules
def _geometry_modules(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    # PointModule's protocol, read by attribute (base imports this module)
    for name, sub in module.named_modules(prefix=prefix):
        if getattr(sub, "geometry_keys", ()):
            yield name, sub


def collect_geometry(module: nn.Module | None, pos: Tensor, batch: Tensor,
                     batch_size: int, prefix: str) -> dict[str, Tensor]:
    """Plan side: the tables of every module inside ``module`` that builds its own
    neighbourhoods, keyed ``"<prefix>.<submodule>.<key>"``."""
    out: dict[str, Tensor] = {}
    if module is None:
        return out
    for name, sub in _geometry_modules(module, prefix):
        for k, v in sub.plan_geometry(pos, batch, batch_size).items():
            out[f"{name}.{k}" if name else k] = v
    return out


def bind_geometry(module: nn.Module, plan: Mapping[str, Tensor],
                  prefix: str = "") -> dict[int, dict[str, Tensor]]:
    """Network side: ``{id(submodule): tables}`` read back from a plan."""
    out: dict[int, dict[str, Tensor]] = {}
    for name, sub in _geometry_modules(module, prefix):
        keys = [f"{name}.{k}" if name else k for k in sub.geometry_keys]
        missing = [k for k in keys if k not in plan]
        if missing:
            raise KeyError(f"the plan has no tables for {type(sub).__name__} "
                           f"{name!r} (missing {missing}); compute the plan with "
                           f"the same model")
        out[id(sub)] = {k: plan[q] for k, q in zip(sub.geometry_keys, keys)}
    return out
