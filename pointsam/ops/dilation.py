r"""Dilated neighbourhoods: the dilation rule and hybrid dilation rates.

:func:`dilate` is the one rule that picks k of a sorted candidate table (used by
:func:`pointsam.ops.knn`, :func:`pointsam.ops.feature_knn` and DGCNN's shared
coordinate table); :func:`hdc_rates` gives per-layer rates.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._validate import check_positive_int
from .fixed import fixed_batch_size

__all__ = ["dilate", "hdc_rates"]


def dilate(nbr_idx: Tensor, nbr_mask: Tensor | None, k: int, dilation: int = 1, *,
           random_dilation: bool = False,
           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    r"""Keep k of each row's sorted candidates, every ``dilation``-th.

    From `"Dilated Point Convolutions" <https://arxiv.org/abs/1904.12023>`_
    (DeepGCN's dilated kNN). Row i holds candidates :math:`j_0, j_1, \dots`
    sorted by increasing distance, of which the first :math:`n_i` are valid
    (``nbr_mask``, or ``nbr_idx >= 0`` when ``nbr_mask`` is ``None``: padding
    at the end of a row, as :func:`~pointsam.ops.knn` gives it). With the stride

    .. math::
        s_i = \min\Big(d,\ \max\big(1, \big\lfloor \tfrac{n_i - 1}{k - 1}
        \big\rfloor\big)\Big),\qquad
        \mathcal{N}^{(d)}_i = \{j_0, j_{s_i}, j_{2 s_i}, \dots,
        j_{(k-1) s_i}\},

    a row with at least :math:`(k - 1) d + 1` valid candidates keeps every d-th;
    a shorter row (a small cloud) uses the largest stride that still gives
    :math:`\min(k, n_i)` neighbours. Picks past :math:`n_i` are masked and
    repeat :math:`j_0`, so gathers stay in range. With ``random_dilation=True``
    (stochastic dilation, training) :math:`j_0` and k - 1 valid candidates drawn
    uniformly are kept, in distance order.

    Args:
        nbr_idx: Candidates :math:`(M, K')`, :math:`K' \ge k`, sorted by distance.
        nbr_mask: Valid candidates :math:`(M, K')` (a prefix of each row), or
            ``None`` when padding is marked by ``-1`` in ``nbr_idx``.
        k: Neighbours kept (>= 1).
        dilation: Stride d (>= 1). (default: 1)
        random_dilation: Draw instead of striding. (default: ``False``)
        generator: Random generator for ``random_dilation``.

    Returns:
        ``(nbr_idx, nbr_mask)``, int64 / bool :math:`(M, k)`.

    Example:
        >>> t = torch.tensor([[0, 1, 2, 3, 4, 5], [6, 7, 8, -1, -1, -1]])
        >>> idx, mask = dilate(t, None, 3, 2)
        >>> idx.tolist(), mask.tolist()
        ([[0, 2, 4], [6, 7, 8]], [[True, True, True], [True, True, True]])
        >>> dilate(t[1:], t[1:] >= 0, 3, 3)[0].tolist()  # 3 valid: stride 1
        [[6, 7, 8]]
    """
    check_positive_int(k, "k")
    check_positive_int(dilation, "dilation")
    if not isinstance(nbr_idx, Tensor) or nbr_idx.dim() != 2 \
            or nbr_idx.dtype != torch.long:
        got = (f"{nbr_idx.dtype} {list(nbr_idx.shape)}" if isinstance(nbr_idx, Tensor)
               else type(nbr_idx).__name__)
        raise ValueError(f"nbr_idx must be an int64 [M, K'] table, got {got}")
    if nbr_idx.size(1) < k:
        raise ValueError(f"nbr_idx has {nbr_idx.size(1)} candidates per row, fewer "
                         f"than k={k}")
    if nbr_mask is not None:
        if not isinstance(nbr_mask, Tensor) or nbr_mask.shape != nbr_idx.shape \
                or nbr_mask.dtype != torch.bool:
            raise ValueError("nbr_mask must be a bool tensor of the shape of nbr_idx")
        nbr_idx = nbr_idx.masked_fill(~nbr_mask, -1)  # [M, K']
    return dilate_table(nbr_idx, k, dilation, random_dilation, generator)


def dilate_table(table: Tensor, k: int, d: int, random_dilation: bool = False,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """:func:`dilate` on a ``-1``-padded table, without argument checks (internal)."""
    valid = table >= 0  # [M, kk]
    if d == 1 and table.size(1) == k:  # the table itself, padding -> nearest
        if fixed_batch_size() is None and bool(valid.all()):  # (traced: no branch)
            return table, valid
        return torch.where(valid, table, table[:, :1]), valid  # [M, k]
    n_valid = valid.sum(1)  # [M]
    kk = table.size(1)
    if random_dilation:
        # keep slot 0, draw k - 1 of the other valid slots, then sort the slots
        r = torch.rand(table.shape, generator=generator,
                       device="cpu").to(table.device)  # [M, kk]
        r = r.masked_fill(~valid, 2.0)
        r[:, 0] = -1.0
        sel = r.topk(k, dim=1, largest=False).indices.sort(dim=1).values  # [M, k]
    else:
        # the largest stride <= d whose k-th pick, slot (k-1)*stride, is still valid
        stride = ((n_valid - 1) // max(k - 1, 1)).clamp(min=1, max=d)  # [M]
        sel = torch.arange(k, device=table.device).unsqueeze(0) * stride.unsqueeze(1)
        sel = sel.clamp(max=kk - 1)  # [M, k]
    idx = table.gather(1, sel)  # [M, k]
    mask = (idx >= 0) & (sel < n_valid.unsqueeze(1))
    idx = torch.where(mask, idx, table[:, :1].expand_as(idx))  # [M, k]
    return idx, mask


def hdc_rates(depth: int, rates: Sequence[int] = (1, 2, 5)) -> list[int]:
    r"""Per-layer dilation rates that avoid the gridding effect (HDC).

    From `"Understanding Convolution for Semantic Segmentation"
    <https://arxiv.org/abs/1702.08502>`_: the rates repeat the saw-tooth
    ``rates`` cyclically. The rates actually used (one cycle, or the first
    ``depth`` of it) must have no common factor greater than 1 (else the stacked
    layers only ever see a sub-lattice of neighbours, the gridding effect), and
    the cycle must meet the paper's condition :math:`M_2 \le K` for kernel size
    K = 3, with :math:`M_n = r_n` and :math:`M_i = \max(M_{i+1} - 2 r_i,\;
    M_{i+1} - 2 (M_{i+1} - r_i),\; r_i)` (the largest gap between taps seen by
    layer i); this rules out e.g. (1, 2, 9) and (4, 6, 9).

    Example:
        >>> hdc_rates(4)
        [1, 2, 5, 1]
    """
    from math import gcd

    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    rates = list(rates)
    if not rates or any(isinstance(r, bool) or not isinstance(r, int) or r < 1
                        for r in rates):
        raise ValueError(f"rates must be positive integers, got {rates}")
    out = [rates[i % len(rates)] for i in range(depth)]
    used = out[:len(rates)]  # one cycle, or the first depth of it
    g = 0
    for r in used:
        g = gcd(g, r)
    if g > 1 and len(used) > 1:
        raise ValueError(f"rates {used} share the factor {g}: gridding effect")
    m = rates[-1]  # M_n = r_n
    for r in reversed(rates[1:-1]):
        m = max(m - 2 * r, m - 2 * (m - r), r)  # M_i from M_(i+1)
    if len(rates) > 1 and m > 3:
        raise ValueError(f"rates {rates}: M_2 = {m} > 3, the stacked layers leave "
                         "holes (HDC condition M_2 <= K, K = 3)")
    return out
