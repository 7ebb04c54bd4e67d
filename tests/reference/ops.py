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


def feature_knn_sets(x: Tensor, k: int, batch: Tensor) -> list[set[int]]:
    """Per point, the set of its k nearest in feature space within its cloud."""
    xd = x.double()
    out = []
    for i in range(x.size(0)):
        same = torch.nonzero(batch == batch[i]).flatten()
        d = ((xd[same] - xd[i]) ** 2).sum(-1)
        out.append(set(same[d.argsort(stable=True)[:k]].tolist()))
    return out


def dilate_rows(table: Tensor, k: int, d: int) -> tuple[list[list[int]], list[list[bool]]]:
    """The dilation rule row by row: valid prefix n, stride min(d, max(1,
    (n - 1) // (k - 1))), picks t * stride; a pick past n is masked and repeats
    the row's first candidate."""
    idx, mask = [], []
    for row in table.tolist():
        valid = [j for j in row if j >= 0]
        n = len(valid)
        s = min(d, max(1, (n - 1) // max(k - 1, 1)))
        picks = [t * s for t in range(k)]
        idx.append([valid[p] if p < n else valid[0] for p in picks])
        mask.append([p < n for p in picks])
    return idx, mask


def grid_naive(pos: Tensor, size: float, batch: Tensor) -> tuple[list[int], list[int]]:
    """Voxel grid point by point: ``(cluster [N], cloud [M])``, voxels numbered in
    (cloud, vx, vy, vz) order, ``v = floor((p - min of the cloud) / size)``."""
    p = pos.double() if pos.dtype == torch.float64 else pos.float()
    keys = []
    for i in range(p.size(0)):
        b = int(batch[i])
        lo = p[batch == b].min(0).values
        v = torch.floor((p[i] - lo) / size).long().tolist()
        keys.append((b, *v))
    order = sorted(set(keys))
    rank = {k: j for j, k in enumerate(order)}
    return [rank[k] for k in keys], [k[0] for k in order]
