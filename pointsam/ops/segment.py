r"""Segment reductions over a ``batch``-style index (scatter-based).

For ``src`` [N, ...] and ``index`` [N] with values in ``0..S-1``:
``segment_sum/mean/max`` give [S, ...]; ``segment_softmax`` gives [N, ...] with

.. math::
    \mathrm{softmax}(s)_i = \frac{\exp(s_i - m_{g(i)})}{\sum_{j: g(j)=g(i)}
    \exp(s_j - m_{g(i)})}, \quad m_g = \max_{j: g(j)=g} s_j.

Empty segments give 0 (sum, mean) and 0 (max; never ``-inf``).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["segment_sum", "segment_mean", "segment_max", "segment_softmax"]


def _expand(index: Tensor, src: Tensor) -> Tensor:
    return index.view((-1,) + (1,) * (src.dim() - 1)).expand_as(src)


def _num(index: Tensor, num_segments: int | None) -> int:
    if num_segments is not None:
        return num_segments
    return int(index.max()) + 1 if index.numel() else 0


def segment_sum(src: Tensor, index: Tensor, num_segments: int | None = None) -> Tensor:
    """Sum of ``src`` rows per segment, [S, ...]."""
    s = _num(index, num_segments)
    out = src.new_zeros((s,) + tuple(src.shape[1:]))
    return out.scatter_add_(0, _expand(index, src), src)


def segment_mean(src: Tensor, index: Tensor, num_segments: int | None = None) -> Tensor:
    """Mean of ``src`` rows per segment, [S, ...] (0 for an empty segment)."""
    s = _num(index, num_segments)
    total = segment_sum(src, index, s)
    count = torch.bincount(index, minlength=s).clamp_(min=1).to(src.dtype)  # [S]
    return total / count.view((-1,) + (1,) * (src.dim() - 1))


def segment_max(src: Tensor, index: Tensor, num_segments: int | None = None) -> Tensor:
    """Max of ``src`` rows per segment, [S, ...] (0 for an empty segment)."""
    s = _num(index, num_segments)
    out = src.new_zeros((s,) + tuple(src.shape[1:]))
    return out.scatter_reduce(0, _expand(index, src), src, reduce="amax",
                              include_self=False)


def segment_softmax(src: Tensor, index: Tensor,
                    num_segments: int | None = None) -> Tensor:
    """Softmax of ``src`` within each segment, [N, ...]."""
    s = _num(index, num_segments)
    m = segment_max(src.detach(), index, s)  # [S, ...]
    e = (src - m.index_select(0, index)).exp()  # [N, ...]
    z = segment_sum(e, index, s)  # [S, ...]
    return e / z.index_select(0, index)
