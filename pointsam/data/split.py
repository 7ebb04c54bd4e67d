"""The fixed-seed train/validation carve-out of a train split."""

from __future__ import annotations

import torch

__all__ = ["split_train_val"]


def split_train_val(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Fixed-seed carve-out of ``round(fraction * n)`` validation indices.

    At least one item goes to each side when ``fraction > 0`` and ``n >= 2``; the
    permutation comes from a private generator (the global RNG is untouched), so
    every run and every DDP rank gets the same carve-out.

    Args:
        n: Size of the train split.
        fraction: Share of it that becomes the validation split.
        seed: Seed of the permutation (``data.split_seed``).

    Returns:
        ``(train_indices, val_indices)``, each sorted, disjoint, together ``0..n-1``.

    Example:
        >>> tr, va = split_train_val(10, 0.2, seed=0)
        >>> len(tr), len(va), sorted(tr + va) == list(range(10))
        (8, 2, True)
    """
    if n < 1:
        raise ValueError("the train split is empty")
    k = int(round(fraction * n))
    if fraction > 0 and n >= 2:
        k = min(max(k, 1), n - 1)
    else:
        k = 0
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(perm[k:]), sorted(perm[:k])
