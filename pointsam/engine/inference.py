r"""Whole-scan inference for semantic segmentation of large LiDAR scans.

A 120k-point scan is too big (or too dense) to push through a model at once on
a small machine. :func:`predict_scan` therefore

1. optionally voxel-subsamples the scan (``voxel_size`` metres, one point per
   occupied voxel, features averaged per voxel: :func:`pointsam.ops.grid_subsample`);
2. optionally cuts the (subsampled) cloud into chunks of at most ``chunk_points``
   points: :math:`S = \lceil M / \text{chunk\_points} \rceil` farthest-point
   centres, each point assigned to its nearest centre, a chunk larger than the
   limit split again along its longest axis; each chunk is a separate cloud of
   one batch (so a chunk sees only its own points);
3. carries the class scores back to every original point: a point takes the
   scores of its voxel (``cluster``), so every input point gets a prediction.

Scores are softmax probabilities, ``[N, C]`` for the N original points. With
``votes`` V > 1 the scan goes through V times, turned about the vertical axis
(:func:`scan_vote`), and the probabilities are averaged (test-time
augmentation: the voxel grid, the chunks and the model's ground cells fall
differently each time). ``pointsam eval``, ``pointsam predict`` (the
checkpoint's ``train.votes``) and the cross-drive check all label scans here.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from pointsam import ops

from ._guards import drop_unused_features

__all__ = ["predict_scan", "chunk_assignment", "scan_vote"]


def _split_longest(pos: Tensor, idx: Tensor, limit: int) -> list[Tensor]:
    """Recursively halve ``idx`` along the longest axis until each part <= limit."""
    if idx.numel() <= limit:
        return [idx]
    p = pos[idx]  # [n, 3]
    axis = int((p.max(0).values - p.min(0).values).argmax())
    order = p[:, axis].argsort()
    half = idx.numel() // 2
    return _split_longest(pos, idx[order[:half]], limit) + _split_longest(
        pos, idx[order[half:]], limit
    )


def chunk_assignment(pos: Tensor, chunk_points: int) -> list[Tensor]:
    """Disjoint index sets covering ``range(N)``, each of at most ``chunk_points``.

    Example:
        >>> parts = chunk_assignment(torch.rand(1000, 3), 300)
        >>> sorted(torch.cat(parts).tolist()) == list(range(1000))
        True
        >>> max(len(p) for p in parts) <= 300
        True
    """
    ops.check_positive_int(chunk_points, "chunk_points")
    n = pos.size(0)
    if n <= chunk_points:
        return [torch.arange(n, device=pos.device)]
    s = math.ceil(n / chunk_points)
    centres = ops.fps(pos, num=s)  # [S]
    nearest, _ = ops.knn(pos[centres], 1, query=pos)  # [N, 1] index into centres
    owner = nearest[:, 0]  # [N]
    by_owner = torch.argsort(owner, stable=True)  # [N], ascending within a centre
    sizes = torch.bincount(owner, minlength=s).tolist()
    out: list[Tensor] = []
    for idx in torch.split(by_owner, sizes):
        if idx.numel():
            out += _split_longest(pos, idx, chunk_points)
    return out


def scan_vote(data: Any, vote: int, votes: int) -> Any:
    r"""Test-time augmentation of a whole scan (z up) for vote ``vote`` of
    ``votes``: a turn about the vertical axis by :math:`\theta_v = 2\pi v / V`,
    mirrored (:math:`y \to -y`) on odd votes,

    .. math::
        \mathbf{p}' = R_z(\theta_v)\, \mathrm{diag}(1, (-1)^v, 1)\, \mathbf{p}

    so the voxel grid, the chunks and the ground cells of the height feature
    fall differently on every vote, while heights and labels stay. Vote 0 is
    the scan itself.
    """
    if vote == 0:
        return data
    t = 2 * math.pi * vote / votes
    c, s = math.cos(t), math.sin(t)
    m = 1.0 if vote % 2 == 0 else -1.0
    rot = torch.tensor([[c, -s * m, 0.0], [s, c * m, 0.0], [0.0, 0.0, 1.0]],
                       dtype=data.pos.dtype, device=data.pos.device)  # R_z diag(1, m, 1)
    out = data.clone()
    out.pos = data.pos @ rot.T  # [N, 3]
    return out


@torch.no_grad()
def predict_scan(
    model: nn.Module,
    data: Any,
    *,
    voxel_size: float = 0.0,
    chunk_points: int = 0,
    chunks_per_batch: int = 4,
    device: torch.device | str | None = None,
    votes: int = 1,
) -> Tensor:
    r"""Class probabilities for every point of one scan.

    Args:
        model: A segmentation model: ``model(Batch) -> [N, C]`` logits.
        data: One PyG ``Data`` scan with ``pos`` ``[N, 3]`` and optional ``x``.
        voxel_size: Voxel edge in metres for subsampling (0: no subsampling).
        chunk_points: Max points per chunk (0: the whole (subsampled) scan at once).
        chunks_per_batch: Chunks pushed through the model together.
        device: Where the model runs (default: the model's device).
        votes: Passes turned about z (:func:`scan_vote`) whose probabilities
            are averaged (1: the scan as it is).

    Returns:
        ``[N, C]`` probabilities for the N original points.

    Example:
        >>> from torch_geometric.data import Data
        >>> class Tiny(torch.nn.Module):
        ...     def forward(self, b):  # class 0 left of x=0, class 1 right of it
        ...         return torch.stack([-b.pos[:, 0], b.pos[:, 0]], 1) * 100
        >>> scan = Data(pos=torch.randn(500, 3))
        >>> p = predict_scan(Tiny(), scan, voxel_size=0.05, chunk_points=128)
        >>> right = (p[:, 1] > 0.5) == (scan.pos[:, 0] > 0)
        >>> p.shape, bool(right.float().mean() > 0.95)
        (torch.Size([500, 2]), True)
    """
    ops.check_positive_int(votes, "votes")
    if votes > 1:
        return sum(_predict_once(model, scan_vote(data, v, votes), voxel_size,
                                 chunk_points, chunks_per_batch, device)
                   for v in range(votes)) / votes  # [N, C]
    return _predict_once(model, data, voxel_size, chunk_points, chunks_per_batch,
                         device)


def _predict_once(model: nn.Module, data: Any, voxel_size: float, chunk_points: int,
                  chunks_per_batch: int, device: torch.device | str | None
                  ) -> Tensor:
    from torch_geometric.data import Batch, Data

    pos = data.pos
    ops.check_pos(pos, "data.pos")
    frame = getattr(data, "frame", None)
    if frame is not None and bool((frame != 0).any()):
        raise ValueError(
            "whole-scan inference (voxel_size / chunk_points) takes one scan, but "
            "this sample holds earlier scans too (frame > 0): evaluate multi-scan "
            "samples with train.voxel_size=0 and train.chunk_points=0")
    x = getattr(data, "x", None)
    if device is None:
        p0 = next(iter(model.parameters()), None)
        device = p0.device if p0 is not None else pos.device
    n = pos.size(0)
    if voxel_size > 0:
        g = ops.grid_subsample(pos, float(voxel_size))
        sub_pos, cluster = g.pos, g.cluster  # [M, 3], [N]
        m = sub_pos.size(0)
        sub_x = ops.segment_mean(x, cluster, m) if x is not None else None  # [M, C]
    else:
        sub_pos, cluster, sub_x = pos, None, x
        m = n
    parts = (
        chunk_assignment(sub_pos, chunk_points)
        if chunk_points > 0
        else [torch.arange(m, device=pos.device)]
    )
    scores: Tensor | None = None
    for start in range(0, len(parts), max(1, chunks_per_batch)):
        group = parts[start : start + max(1, chunks_per_batch)]
        datas = [
            Data(pos=sub_pos[i], x=None if sub_x is None else sub_x[i]) for i in group
        ]
        if all(d.x is None for d in datas):
            for d in datas:
                del d.x
        batch = drop_unused_features(model, Batch.from_data_list(datas).to(device))
        logits = model(batch)  # [sum n_i, C]
        prob = logits.float().softmax(-1).to(pos.device)  # [sum n_i, C]
        if scores is None:
            scores = torch.zeros(m, prob.size(1), dtype=prob.dtype, device=pos.device)
        scores[torch.cat(group)] = prob  # chunk order = concatenation order
    assert scores is not None
    return scores[cluster] if cluster is not None else scores  # [N, C]
