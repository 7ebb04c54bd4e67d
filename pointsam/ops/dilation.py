r"""Hybrid dilated convolution rates for stacked neighbourhood layers."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["hdc_rates"]


def hdc_rates(depth: int, rates: Sequence[int] = (1, 2, 5)) -> list[int]:
    r"""Per-layer dilation rates that avoid the gridding effect (HDC).

    From `"Understanding Convolution for Semantic Segmentation"
    <https://arxiv.org/abs/1702.08502>`_: the rates repeat the saw-tooth
    ``rates`` cyclically; the rates of one cycle must have no common factor
    greater than 1 (else the stacked layers only ever see a sub-lattice of
    neighbours, the gridding effect).

    Example:
        >>> hdc_rates(4)
        [1, 2, 5, 1]
    """
    from math import gcd

    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    rates = list(rates)
    if not rates or any((not isinstance(r, int)) or r < 1 for r in rates):
        raise ValueError(f"rates must be positive integers, got {rates}")
    g = 0
    for r in rates:
        g = gcd(g, r)
    if g > 1:
        raise ValueError(f"rates {rates} share the factor {g}: gridding effect")
    return [rates[i % len(rates)] for i in range(depth)]
