r"""Fixed-size batches: B clouds of exactly n points, searched with dense torch ops.

The geometry plan of a model (DESIGN.md section 9) is normally computed by the
backends of :func:`~pointsam.ops.fps` and :func:`~pointsam.ops.knn` (fpsample,
kd-trees), which read the cloud sizes on the host and cannot be traced. When
every cloud of a batch has the same number of points n, stored contiguously
(cloud b is rows :math:`[b n, (b + 1) n)`), every size in the plan is a function
of n alone, and the whole plan is a fixed sequence of tensor ops:

- :func:`fps_dense`: farthest-point sampling as a loop of ``s`` steps over
  ``[B, n]`` distances (one ``scan`` when exported: ``s`` is static);
- :func:`knn_dense`: ``[B, m, n]`` squared distances and ``topk`` per cloud
  (the ball query is this table masked by the radius, :func:`~pointsam.ops.radius`);
- :func:`fixed_layout` and :func:`count_per_index`: the per-cloud padding and
  counts, which are constants or one-hot sums here (no ``bincount``, no scatter).

Inside :func:`fixed_size` the public ops switch to these paths, so a model's own
``plan()`` code traces into an ONNX / ``torch.export`` graph whose input is the raw
cloud (:func:`pointsam.export.export_onnx` with ``num_points``). The number of
clouds B may stay symbolic; n must be a Python int (static), since it fixes the
number of FPS samples, the ``topk`` widths and the length of the FPS loop.

Memory is :math:`O(B m n)` per search: this is for ModelNet/ShapeNet-sized clouds
(a few thousand points), not for scans.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

__all__ = ["fixed_size", "fixed_batch_size", "fps_dense", "knn_dense",
           "fixed_layout", "count_per_index"]

_LOCAL = threading.local()


@contextmanager
def fixed_size(batch_size: Any) -> Iterator[None]:
    r"""Run the ops inside on B clouds of equal size with dense torch paths.

    Inside, every ``pos`` / ``query`` / ``batch`` handed to :func:`~pointsam.ops.fps`,
    :func:`~pointsam.ops.knn`, :func:`~pointsam.ops.radius` and
    :func:`~pointsam.nn.network.dense_layout` must hold ``batch_size`` clouds of
    equal size, cloud after cloud (what a model's plan produces from such a
    batch: FPS keeps the same number of samples in every cloud). Nothing is
    checked here (a per-thread flag read in Python: ``torch.export`` sees only
    the tensors); :func:`fps_dense`'s start is the canonical one, so random or
    explicit starts are refused.

    Args:
        batch_size: The number of clouds B (an int, or a symbolic size while
            tracing).

    Example:
        >>> from pointsam import ops
        >>> pos = torch.rand(2 * 50, 3)
        >>> batch = torch.arange(2).repeat_interleave(50)
        >>> with ops.fixed_size(2):
        ...     idx = ops.fps(pos, batch, num=8, batch_size=2)
        >>> torch.equal(idx, ops.fps(pos, batch, num=8, backend="torch"))
        True
    """
    stack = getattr(_LOCAL, "stack", None)
    if stack is None:
        stack = _LOCAL.stack = []
    stack.append(batch_size)
    try:
        yield
    finally:
        stack.pop()


def fixed_batch_size() -> Any:
    """The number of clouds inside :func:`fixed_size`, else ``None``."""
    stack = getattr(_LOCAL, "stack", None)
    return stack[-1] if stack else None


def _sqdist3(a: Tensor, b: Tensor) -> Tensor:
    """:math:`(a_x - b_x)^2 + (a_y - b_y)^2 + (a_z - b_z)^2` with broadcasting:
    three subtractions, products and sums in a fixed order, so that eager torch
    and ONNX Runtime round alike (a reduction may sum in another order)."""
    d = a - b  # [..., 3]
    d2 = d * d
    return d2[..., 0] + d2[..., 1] + d2[..., 2]


def fps_dense(pos: Tensor, num: int, start: Tensor | None = None) -> Tensor:
    r"""Farthest-point sampling of ``num`` points in each of B clouds of n points.

    .. math::
        s_0 = \arg\max_i \|\mathbf{p}_i - \bar{\mathbf{p}}\|,\qquad
        s_t = \arg\max_i \min_{u < t} \|\mathbf{p}_i - \mathbf{p}_{s_u}\|

    per cloud, with :math:`\bar{\mathbf{p}}` the centroid: the canonical start of
    :func:`~pointsam.ops.fps` (the point farthest from the centroid, computed in
    float64), so the samples equal ``fps(..., backend="torch")`` and do not
    depend on the order of the points (up to exact ties, which go to the lowest
    index). The distances are float32, the loop is ``num - 1`` steps of
    ``[B, n]`` work. Under ``torch.export`` the loop is one ``scan``
    (``torch._higher_order_ops.scan``; an ONNX ``Scan``): the same ops, so the
    same samples, in a graph of constant size (unrolled, the ``num - 1``
    copies take minutes to export). ``num`` is capped at n.

    Args:
        pos: B clouds :math:`(B, n, 3)`.
        num: Samples per cloud (>= 1).
        start: Local start index per cloud :math:`(B)`; default canonical.

    Shapes:
        - **input:** pos :math:`(B, n, 3)`
        - **output:** :math:`(B, s)` int64 local indices (into each cloud's n),
          in sampling order, :math:`s = \min(\text{num}, n)`

    Example:
        >>> pos = torch.tensor([[[0., 0, 0], [1, 0, 0], [2, 0, 0], [10, 0, 0]]])
        >>> fps_dense(pos, 2).tolist()
        [[3, 0]]
    """
    b, n = pos.size(0), pos.size(1)
    s = min(int(num), n)
    if start is None:
        p64 = pos.double()
        centre = p64.sum(1, keepdim=True) / n  # [B, 1, 3]
        start = _sqdist3(p64, centre).argmax(1)  # [B]
    p = pos.float()
    cur = start.long()  # [B]
    dist = torch.full((b, n), float("inf"), device=pos.device)  # [B, n]

    def step(dist: Tensor, cur: Tensor) -> tuple[Tensor, Tensor]:
        sel = p.gather(1, cur.view(-1, 1, 1).expand(-1, 1, 3))  # [B, 1, 3]
        dist = torch.minimum(dist, _sqdist3(p, sel))  # [B, n]
        return dist, dist.argmax(1)  # [B, n], [B]

    if s > 1 and torch.compiler.is_exporting():
        # one ONNX Scan / torch.export scan node instead of s - 1 unrolled copies
        from torch._higher_order_ops.scan import scan

        def body(carry: tuple[Tensor, Tensor], _: Tensor
                 ) -> tuple[tuple[Tensor, Tensor], Tensor]:
            d, c = step(*carry)
            return (d, c.clone()), c.clone()  # outputs must not alias the carry

        steps = torch.zeros(s - 1, 1, device=pos.device)  # [s - 1, 1], the count
        _, picks = scan(body, (dist, cur), steps)  # [s - 1, B]
        return torch.cat([cur.unsqueeze(1), picks.transpose(0, 1)], dim=1)  # [B, s]
    out = [cur]
    for _ in range(s - 1):
        dist, cur = step(dist, cur)
        out.append(cur)
    return torch.stack(out, dim=1)  # [B, s]


def knn_dense(pos: Tensor, k: int, query: Tensor | None = None) -> Tensor:
    r"""The k nearest of ``pos`` for each query, per cloud, from dense distances.

    .. math::
        \mathcal{N}_k(i) = \operatorname{topk}_{j \le n}\big(-\|\mathbf{q}_i -
        \mathbf{p}_j\|^2\big)

    over the query's own cloud, sorted by increasing distance; the squared
    distances come from coordinate differences (as the ``"dense"`` backend of
    :func:`~pointsam.ops.knn`). A ball query of radius r is this table with the
    entries :math:`\|\mathbf{q}_i - \mathbf{p}_j\|^2 > r^2` masked
    (:func:`~pointsam.ops.radius`).

    Args:
        pos: B clouds :math:`(B, n, 3)`.
        k: Neighbours per query (>= 1); columns past n are ``-1``.
        query: Queries :math:`(B, m, 3)`, cloud b searching cloud b of ``pos``;
            default ``pos``.

    Shapes:
        - **input:** pos :math:`(B, n, 3)`, query :math:`(B, m, 3)`
        - **output:** :math:`(B, m, k)` int64 local indices, ``-1`` past n

    Example:
        >>> pos = torch.tensor([[[0., 0, 0], [1, 0, 0], [3, 0, 0]]])
        >>> knn_dense(pos, 2).tolist()
        [[[0, 1], [1, 0], [2, 1]]]
    """
    q = pos if query is None else query
    n = pos.size(1)
    kq = min(int(k), n)
    d = _sqdist3(q.unsqueeze(2), pos.unsqueeze(1))  # [B, m, n]
    idx = d.topk(kq, dim=-1, largest=False, sorted=True).indices  # [B, m, kq]
    if kq < k:  # a cloud smaller than k: pad with -1
        pad = idx.new_full(idx.shape[:-1] + (k - kq,), -1)  # [B, m, k - kq]
        idx = torch.cat([idx, pad], dim=-1)  # [B, m, k]
    return idx


def fixed_layout(batch: Tensor, batch_size: Any, min_width: int = 1
                 ) -> tuple[Tensor, Tensor]:
    r""":func:`~pointsam.nn.network.dense_layout` of B clouds of n points each.

    :math:`W = \max(n, \text{min\_width})`, ``slot_i = b_i W + (i - b_i n)``, and
    the mask is the first n columns of every row: constants of n, no counting.

    Shapes:
        - **input:** batch :math:`(B n)`
        - **output:** slot :math:`(B n)`, mask :math:`(B, W)`
    """
    n = batch.view(batch_size, -1).size(1)
    w = max(n, int(min_width))
    local = torch.arange(n, device=batch.device).repeat(batch_size)  # [B n]
    slot = batch * w + local  # [B n]
    mask = (torch.arange(w, device=batch.device) < n).unsqueeze(0)  # [1, W]
    return slot, mask.expand(batch_size, w)  # [B n], [B, W]


def count_per_index(index: Tensor, num: int | Any) -> Tensor:
    r"""How often each of ``0..num-1`` occurs in ``index``: ``bincount``.

    Inside :func:`fixed_size` the rows of ``index`` are B clouds of equal size
    whose values lie in their cloud's block of ``num / B`` entries (a point's
    token, say); the counts are then a per-cloud one-hot sum,
    :math:`(B, n, M) \to (B, M)`, which traces and exports (``bincount`` has a
    data-dependent size, and ONNX Runtime's scatter-add races on several threads).

    Shapes:
        - **input:** index :math:`(N)`
        - **output:** :math:`(\text{num})` int64
    """
    b = fixed_batch_size()
    if b is None:
        return torch.bincount(index, minlength=num)  # [num]
    local = index.view(b, -1)  # [B, n]
    m = num // b  # entries per cloud
    local = local - (torch.arange(b, device=index.device) * m).unsqueeze(1)  # [B, n]
    ar = torch.arange(m, device=index.device).view(1, 1, -1)  # [1, 1, M]
    onehot = (local.unsqueeze(-1) == ar).long()  # [B, n, M]
    return onehot.sum(1).flatten()  # [B M]
