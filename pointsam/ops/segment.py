r"""Segment reductions over a ``batch``-style index (scatter-based).

For ``src`` [N, ...] and ``index`` [N] with values in ``0..S-1``:
``segment_sum/mean/max`` give [S, ...]; ``segment_softmax`` gives [N, ...] with

.. math::
    \mathrm{softmax}(s)_i = \frac{\exp(s_i - m_{g(i)})}{\sum_{j: g(j)=g(i)}
    \exp(s_j - m_{g(i)})}, \quad m_g = \max_{j: g(j)=g} s_j.

Empty segments give 0 (sum, mean) and 0 (max; never ``-inf``). Sums of
float16/bfloat16 inputs accumulate in float32 (a float16 sum over more than a
few thousand points overflows 65504); means and softmax are returned in the
input dtype and stay finite, a sum is cast back to it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._validate import is_trusted

__all__ = ["segment_sum", "segment_mean", "segment_max", "segment_softmax", "tracing"]


def tracing() -> bool:
    """Whether ``torch.export`` or ``torch.compile`` is tracing the current call."""
    return bool(torch.compiler.is_exporting() or torch.compiler.is_compiling())


def _expand(index: Tensor, src: Tensor) -> Tensor:
    return index.view((-1,) + (1,) * (src.dim() - 1)).expand_as(src)


def _num(index: Tensor, num_segments: int | None) -> int:
    if num_segments is not None and (tracing() or is_trusted()):
        return num_segments  # a network's own count: no check, no host sync
    if num_segments is not None:
        if isinstance(num_segments, bool) or not isinstance(num_segments, int) \
                or num_segments < 0:
            raise ValueError(f"num_segments must be an integer >= 0, got "
                             f"{num_segments!r}")
        if index.numel() and int(index.max()) >= num_segments:
            raise ValueError(f"num_segments={num_segments} but index holds segment "
                             f"{int(index.max())}")
        return num_segments
    return int(index.max()) + 1 if index.numel() else 0


def _acc(src: Tensor) -> Tensor:
    """``src`` in its accumulation dtype: float32 for float16/bfloat16."""
    return src.float() if src.dtype in (torch.float16, torch.bfloat16) else src


def _segment_sum_acc(src: Tensor, index: Tensor, s: int) -> Tensor:
    a = _acc(src)
    out = a.new_zeros((s,) + tuple(src.shape[1:]))  # [S, ...]
    return out.scatter_add_(0, _expand(index, a), a)


def _onehot_sum(src: Tensor, index: Tensor, s: int) -> Tensor:
    """Traced sum: a one-hot matmul :math:`(S, N) \times (N, C)` (few segments:
    the clouds). ONNX Runtime 1.32 runs the ``ScatterND``/``ScatterElements`` add
    that ``index_add`` exports to with a race on more than one thread."""
    ar = torch.arange(s, device=index.device).unsqueeze(1)  # [S, 1]
    onehot = (index.unsqueeze(0) == ar).to(src.dtype)  # [S, N]
    return (onehot @ src.flatten(1)).view((s,) + tuple(src.shape[1:]))  # [S, ...]


def segment_sum(src: Tensor, index: Tensor, num_segments: int | None = None) -> Tensor:
    """Sum of ``src`` rows per segment, [S, ...] (accumulated in >= float32).

    The one family of segment reductions: a network calls it with its own
    ``num_segments`` inside :func:`trusted` (no check, no host sync), and traced
    it is a one-hot matmul (see :func:`_onehot_sum`)."""
    s = _num(index, num_segments)
    if tracing():
        return _onehot_sum(src, index, s)
    return _segment_sum_acc(src, index, s).to(src.dtype)


def segment_mean(src: Tensor, index: Tensor, num_segments: int | None = None) -> Tensor:
    """Mean of ``src`` rows per segment, [S, ...] (0 for an empty segment)."""
    s = _num(index, num_segments)
    if tracing():
        total = _onehot_sum(src, index, s)  # [S, ...]
        ones = torch.ones_like(index, dtype=src.dtype)
        count = src.new_zeros(s).index_add(0, index, ones).clamp(min=1)  # [S]
        return total / count.view((-1,) + (1,) * (src.dim() - 1))
    total = _segment_sum_acc(src, index, s)  # [S, ...]
    count = torch.bincount(index, minlength=s).clamp_(min=1).to(total.dtype)  # [S]
    return (total / count.view((-1,) + (1,) * (src.dim() - 1))).to(src.dtype)


def segment_max(src: Tensor, index: Tensor, num_segments: int | None = None) -> Tensor:
    r"""Max of ``src`` rows per segment, [S, ...] (0 for an empty segment).

    Traced, it is one ``scatter_reduce`` onto :math:`-\infty` with the empty
    segments set to 0 afterwards: ``include_self=False`` exports to two
    ``ScatterElements`` (one to seed, one to reduce), twice the cost in ONNX
    Runtime."""
    s = _num(index, num_segments)
    if tracing():
        out = src.new_full((s,) + tuple(src.shape[1:]), float("-inf"))
        out = out.scatter_reduce(0, _expand(index, src), src, reduce="amax",
                                 include_self=True)  # [S, ...]
        return out.masked_fill(out == float("-inf"), 0.0)
    out = src.new_zeros((s,) + tuple(src.shape[1:]))
    return out.scatter_reduce(0, _expand(index, src), src, reduce="amax",
                              include_self=False)


def segment_softmax(src: Tensor, index: Tensor,
                    num_segments: int | None = None) -> Tensor:
    """Softmax of ``src`` within each segment, [N, ...]."""
    s = _num(index, num_segments)
    m = segment_max(src.detach(), index, s)  # [S, ...]
    e = (_acc(src) - m.index_select(0, index)).exp()  # [N, ...]
    z = _segment_sum_acc(e, index, s)  # [S, ...]
    return (e / z.index_select(0, index)).to(src.dtype)
