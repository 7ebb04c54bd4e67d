r"""Hybrid dilated convolution rates for stacked neighbourhood layers."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["hdc_rates"]


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
