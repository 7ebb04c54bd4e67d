"""Slow, obviously-correct oracles for pointsam.ops (float64, point by point)."""

from __future__ import annotations

import torch
from torch import Tensor


def knn_sets(pos: Tensor, k: int, batch: Tensor, query: Tensor | None = None,
             query_batch: Tensor | None = None,
             scale: Tensor | None = None) -> list[Tensor]:
    """Per query, the sorted squared distances of its k nearest (fewer if small)."""
    if query is None:
        query, query_batch = pos, batch
    p, q = pos.double(), query.double()
    if scale is not None:
        p, q = p * scale.double(), q * scale.double()
    out = []
    for i in range(q.size(0)):
        cand = torch.nonzero(batch == query_batch[i]).flatten()
        d = ((p[cand] - q[i]) ** 2).sum(-1)
        out.append(d.sort().values[:k])
    return out


def fps_min_dist(pos: Tensor, idx: Tensor) -> float:
    """Coverage: the largest distance from a point to its nearest sample."""
    d = torch.cdist(pos.double(), pos[idx].double())
    return float(d.min(1).values.max())


def fps_naive(pos: Tensor, num: int, start: int) -> list[int]:
    """Textbook farthest-point sampling from ``start``."""
    p = pos.double()
    sel = [start]
    dist = ((p - p[start]) ** 2).sum(-1)
    for _ in range(num - 1):
        j = int(dist.argmax())
        sel.append(j)
        dist = torch.minimum(dist, ((p - p[j]) ** 2).sum(-1))
    return sel
