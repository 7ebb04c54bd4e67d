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

__all__ = ["segment_sum", "segment_mean", "segment_max", "segment_softmax",
           "segment_bounds", "sorted_segment_mean", "tracing"]


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


def segment_bounds(index: Tensor, num_segments: int | None = None
                   ) -> tuple[Tensor, Tensor]:
    r"""The sorted layout of a segment index: ``(order, bounds)``.

    ``order`` :math:`(N)` lists the rows segment by segment (stable: rows of one
    segment keep their order) and ``bounds`` :math:`(S + 1)` holds where each
    segment starts, so segment :math:`s` is ``order[bounds[s]:bounds[s + 1]]``.
    What :func:`sorted_segment_mean` reads; it depends on the index alone, so a
    geometry plan can hold it.

    Example:
        >>> order, bounds = segment_bounds(torch.tensor([1, 0, 1, 2]))
        >>> order.tolist(), bounds.tolist()
        ([1, 0, 2, 3], [0, 1, 3, 4])
    """
    s = _num(index, num_segments)
    order = torch.sort(index, stable=True).indices  # [N]
    counts = torch.bincount(index, minlength=s)  # [S]
    bounds = torch.cat([counts.new_zeros(1), counts.cumsum(0)])  # [S + 1]
    return order, bounds


def sorted_segment_mean(src: Tensor, order: Tensor, bounds: Tensor) -> Tensor:
    r"""Mean of ``src`` rows per segment from :func:`segment_bounds`'s layout.

    .. math::
        \bar{x}_s = \frac{P_{b_{s+1}} - P_{b_s}}{\max(b_{s+1} - b_s,\ 1)},
        \qquad P_j = \sum_{i < j} x_{\mathrm{order}_i}

    The prefix sums :math:`P` run in float64, so the difference of two of them
    keeps about 1e-16 of the prefix (a float32 prefix over 10^5 rows would
    lose 1e-3 absolute). Gathers and one ``cumsum``: it exports to ONNX without
    a scatter (ONNX Runtime 1.32 runs the scatter-add that ``index_add``
    exports to with a race on more than one thread) and without the one-hot
    matrix of :func:`segment_mean` (:math:`S \times N`: too big for voxels).
    Equals :func:`segment_mean` up to rounding; an empty segment gives 0.

    Shapes:
        - **input:** src :math:`(N, ...)`, order :math:`(N)`, bounds
          :math:`(S + 1)`
        - **output:** :math:`(S, ...)`, in the dtype of ``src``

    Example:
        >>> x = torch.tensor([[1.], [2.], [3.], [5.]])
        >>> order, bounds = segment_bounds(torch.tensor([1, 0, 1, 2]))
        >>> sorted_segment_mean(x, order, bounds).flatten().tolist()
        [2.0, 2.0, 5.0]
    """
    rows = src.index_select(0, order).flatten(1).to(torch.float64)  # [N, C]
    prefix = torch.cat([rows.new_zeros(1, rows.size(1)), rows.cumsum(0)])  # [N + 1, C]
    lo, hi = bounds[:-1], bounds[1:]  # [S] each
    total = prefix.index_select(0, hi) - prefix.index_select(0, lo)  # [S, C]
    count = (hi - lo).clamp(min=1).to(torch.float64).unsqueeze(1)  # [S, 1]
    return (total / count).to(src.dtype).view((-1,) + tuple(src.shape[1:]))
