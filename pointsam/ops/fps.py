r"""Farthest-point sampling on ragged batches, with several backends.

.. math::
    s_0 = \text{start}, \qquad
    s_{t} = \arg\max_{i} \min_{u < t} \|p_i - p_{s_u}\|

per cloud. With ``random_start=False`` the start is canonical, the point farthest
from the cloud's centroid, so the samples do not depend on the order in which
the points are stored (up to exact ties).

==============  ==============================================================
``"torch"``     vectorised over clouds (dense ``[B, N_max]``), CPU or GPU;
                the reference
``"fpsample"``  fpsample's bucket/kd-tree QuickFPS per cloud (CPU); its start
                is canonical in its own way (see :func:`_fps_fpsample`)
``"cluster"``   ``torch_cluster.fps`` when installed (start index honoured by
                rotating each cloud)
==============  ==============================================================

Inside :func:`~pointsam.ops.fixed_size` (B clouds of n points each) every call
runs :func:`~pointsam.ops.fps_dense` instead: the ``"torch"`` rule and samples,
as tensor ops that export (an ONNX ``Scan``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ._validate import check_batch, check_pos, check_positive_int, is_trusted
from .batch import batch_size_of, batch_to_ptr, default_batch, to_dense
from .fixed import _sqdist3, fixed_batch_size, fps_dense

__all__ = ["fps", "fps_backends", "available_fps_backends", "canonical_start"]


def canonical_start(pos: Tensor, batch: Tensor, batch_size: int) -> Tensor:
    """Per cloud, the local index of the point farthest from the centroid, [B]."""
    p, mask = to_dense(pos.double(), batch, batch_size=batch_size)  # [B, N_max, 3]
    c = p.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)  # [B, 3]
    d = ((p - c.unsqueeze(1)) ** 2).sum(-1).masked_fill(~mask, -1.0)  # [B, N_max]
    return d.argmax(1)


def _fps_torch(pos: Tensor, batch: Tensor, counts: Tensor, start: Tensor,
               b: int) -> Tensor:
    p, mask = to_dense(pos.float(), batch, batch_size=b)  # [B, N_max, 3]
    n_out = int(counts.max())
    dist = torch.full(mask.shape, float("inf"), device=pos.device)
    dist = dist.masked_fill(~mask, -1.0)  # [B, N_max]
    out = torch.empty(b, n_out, dtype=torch.long, device=pos.device)
    cur = start.clone()  # [B]
    ar = torch.arange(b, device=pos.device)
    for t in range(n_out):
        out[:, t] = cur
        sel = p[ar, cur]  # [B, 3]
        d = _sqdist3(p, sel.unsqueeze(1))  # [B, N_max], as fps_dense rounds it
        dist = torch.minimum(dist, d.masked_fill(~mask, -1.0))
        cur = dist.argmax(1)
    keep = torch.arange(n_out, device=pos.device).unsqueeze(0) < counts.unsqueeze(1)
    ptr = batch_to_ptr(batch, b)
    return (out + ptr[:-1].unsqueeze(1))[keep]  # [S]


def _lex_order(p: np.ndarray) -> np.ndarray:
    """``np.lexsort((z, y, x))`` of float32 points [n, 3], with one 64-bit sort.

    Each coordinate becomes its order-preserving uint32 (sign bit set for
    positives, all bits flipped for negatives; -0.0 made +0.0 first, as lexsort
    sees them equal); (x, y) is one uint64 key, sorted once (numpy's vectorised
    quicksort). Points whose (x, y) ties are then put in lexsort's order, by z
    and then by index, among themselves only: the same permutation as lexsort,
    5-10x faster on the clouds of a scan.
    """
    u = (p + np.float32(0.0)).view(np.uint32)  # [n, 3]; -0.0 -> +0.0
    u = np.where(u >> np.uint32(31), ~u, u | np.uint32(0x80000000))
    key = (u[:, 0].astype(np.uint64) << np.uint64(32)) | u[:, 1]  # [n]
    order = np.argsort(key)  # ties in any order: fixed below
    k = key[order]
    tie = k[1:] == k[:-1]  # [n - 1]: sorted position i ties with i + 1
    if tie.any():
        member = np.zeros(len(order), dtype=bool)
        member[1:] |= tie
        member[:-1] |= tie
        at = np.flatnonzero(member)  # sorted positions in tied runs
        first = np.ones(len(at), dtype=bool)
        first[1:] = ~tie[at[1:] - 1]  # a run starts where it does not tie back
        run = np.cumsum(first)
        sub = order[at]
        order[at] = sub[np.lexsort((sub, u[sub, 2], run))]  # by run, z, index
    return order


def _fps_fpsample(pos: Tensor, batch: Tensor, counts: Tensor, start: Tensor | None,
                  b: int) -> Tensor:
    """fpsample's QuickFPS (``bucket_fps_kdline_sampling``), exact FPS.

    fpsample 1.0.x does not honour ``start_idx`` in its bucket samplers (it starts
    from a point of its kd-tree order instead; see fpsample issue #2), so this
    backend takes no start: it sorts each cloud lexicographically by (x, y, z)
    first, which makes the start, and so the samples, a function of the point
    *set*, independent of the stored order.
    """
    import fpsample

    if pos.device.type != "cpu":
        raise ValueError("fps backend 'fpsample' runs on the CPU only")
    pn = pos.detach().float().numpy()
    ptr = batch_to_ptr(batch, b).tolist()
    cnt = counts.tolist()
    outs = []
    for i in range(b):
        n_b, s = ptr[i + 1] - ptr[i], cnt[i]
        if s == 0:
            continue
        p = pn[ptr[i]:ptr[i + 1]]
        order = _lex_order(p)  # canonical order
        if n_b == 1:
            idx = order
        else:  # also for s == n_b: the result is in sampling order
            h = 3 if n_b < 2_000 else 5 if n_b < 20_000 else 7 if n_b < 200_000 else 9
            h = max(1, min(h, n_b.bit_length() - 1))  # fpsample needs 2**h <= n_b
            q = np.ascontiguousarray(p[order])
            idx = order[fpsample.bucket_fps_kdline_sampling(q, s, h, start_idx=0)]
        outs.append(torch.from_numpy(np.asarray(idx, dtype=np.int64)) + ptr[i])
    return torch.cat(outs)


def _fps_cluster(pos: Tensor, batch: Tensor, counts: Tensor, start: Tensor,
                 b: int) -> Tensor:
    import torch_cluster

    ptr = batch_to_ptr(batch, b)
    n = torch.bincount(batch, minlength=b)
    # rotate every cloud so that its start comes first: torch_cluster starts at 0
    local = torch.arange(pos.size(0), device=pos.device) - ptr[batch]
    rot = (local + start[batch]) % n[batch] + ptr[batch]  # [N]
    ratio = (counts.double() / n.clamp(min=1).double())
    out = []
    for i in range(b):  # torch_cluster takes one ratio for all clouds
        sl = slice(int(ptr[i]), int(ptr[i + 1]))
        if int(counts[i]) == 0:
            continue
        r = float(ratio[i])
        idx = torch_cluster.fps(pos[rot[sl]], None, r, random_start=False)
        out.append(rot[sl][idx[: int(counts[i])]])
    return torch.cat(out)


def _fps_fixed(pos: Tensor, ratio: float | None, num: int | None,
               explicit: bool) -> Tensor:
    """Inside :func:`~pointsam.ops.fixed_size`: :func:`fps_dense` on B x n points."""
    if explicit:
        raise ValueError("fps inside ops.fixed_size() starts canonically; "
                         "random_start and start are not supported there")
    b = fixed_batch_size()
    p = pos.view(b, -1, 3)  # [B, n, 3]
    n = p.size(1)
    s = math.ceil(n * ratio) if ratio is not None else min(int(num), n)  # type: ignore[arg-type]
    idx = fps_dense(p, s)  # [B, s] local
    off = (torch.arange(b, device=pos.device) * n).unsqueeze(1)  # [B, 1]
    return (idx + off).flatten()  # [B s] global


_BACKENDS: dict[str, Callable[..., Tensor]] = {
    "torch": _fps_torch, "fpsample": _fps_fpsample, "cluster": _fps_cluster,
}
fps_backends: tuple[str, ...] = tuple(_BACKENDS)


def _available(name: str) -> bool:
    if name == "torch":
        return True
    try:
        __import__("fpsample" if name == "fpsample" else "torch_cluster")
        return True
    except Exception:
        return False


def available_fps_backends() -> list[str]:
    """The fps backends that can run here."""
    return [n for n in fps_backends if _available(n)]


def fps(pos: Tensor, batch: Tensor | None = None, *, ratio: float | None = None,
        num: int | None = None, random_start: bool = False,
        start: Tensor | Sequence[int] | None = None, generator: torch.Generator | None = None,
        backend: str = "auto", batch_size: int | None = None) -> Tensor:
    r"""Farthest-point sampling per cloud.

    Each cloud b of :math:`n_b` points gives :math:`\lceil \text{ratio} \cdot n_b
    \rceil` samples (``ratio``) or :math:`\min(\text{num}, n_b)` (``num``), in
    sampling order; clouds follow each other in ``batch`` order.

    Args:
        pos: Points :math:`(N, 3)`.
        batch: Sorted cloud ids :math:`(N)`; ``None`` means one cloud.
        ratio: Fraction to keep, in (0, 1].
        num: Samples per cloud (>= 1). Give exactly one of ``ratio`` and ``num``.
        random_start: Start from a random point of each cloud (training
            augmentation) instead of the canonical one.
        start: Local start index per cloud :math:`(B)` (int tensor or list),
            overriding both.
        generator: Random generator for ``random_start``.
        backend: ``"auto"`` (fpsample on the CPU, torch on a GPU or
            torch-cluster when installed there) or one of :data:`fps_backends`.
        batch_size: Number of clouds B, to skip a host sync.

    Returns:
        int64 indices into ``pos``, :math:`(S)`, :math:`S = \sum_b s_b`.

    Example:
        >>> pos = torch.tensor([[0., 0, 0], [1, 0, 0], [2, 0, 0], [10, 0, 0]])
        >>> fps(pos, num=2, backend="torch").tolist()
        [3, 0]
    """
    if not is_trusted():  # value checks: at the boundary only
        check_pos(pos, "pos")
        check_batch(batch, pos.size(0), "batch")
    if (ratio is None) == (num is None):
        raise ValueError("give exactly one of ratio and num")
    if ratio is not None and not (isinstance(ratio, (int, float))
                                  and 0.0 < ratio <= 1.0):
        raise ValueError(f"ratio must be in (0, 1], got {ratio!r}")
    if num is not None:
        check_positive_int(num, "num")
    if fixed_batch_size() is not None:
        return _fps_fixed(pos, ratio, num, random_start or start is not None)
    batch = default_batch(batch, pos)  # [N]
    b = batch_size_of(batch, batch_size)
    n = torch.bincount(batch, minlength=b)  # [B]
    if ratio is not None:
        counts = torch.ceil(n.double() * ratio).long()
    else:
        counts = n.clamp(max=num)
    explicit = start is not None or random_start
    if start is not None:
        start = torch.as_tensor(start, device=pos.device)
        if start.dtype in (torch.bool,) or start.is_floating_point() \
                or start.is_complex() or start.dim() > 1:
            raise ValueError("start must be integer local indices, one per cloud "
                             f"(a list or a 1-D int tensor), got dtype {start.dtype} "
                             f"and shape {list(start.shape)}")
        start = start.to(torch.long).reshape(-1)
        if start.numel() != b or bool(((start < 0) | (start >= n.clamp(min=1))).any()):
            raise ValueError(f"start must hold one local index per cloud ({b}), "
                             "each inside its cloud")
    elif random_start:
        r = torch.rand(b, generator=generator).to(pos.device)
        start = (r * n.to(r.dtype)).long().clamp(max=(n - 1).clamp(min=0))
    if backend == "auto":
        backend = ("fpsample" if pos.device.type == "cpu" and _available("fpsample")
                   and not explicit
                   else "cluster" if pos.device.type != "cpu" and _available("cluster")
                   else "torch")
    elif backend not in _BACKENDS:
        raise ValueError(f"unknown fps backend {backend!r}; "
                         f"choose from {['auto', *fps_backends]}")
    elif not _available(backend):
        raise ValueError(f"fps backend {backend!r} is not installed")
    elif backend == "fpsample" and explicit:
        raise ValueError("fps backend 'fpsample' cannot take a start point "
                         "(random_start or start); use backend='torch' or 'auto'")
    if start is None and backend != "fpsample":  # fpsample has its own start
        start = canonical_start(pos, batch, b)
    return _BACKENDS[backend](pos, batch, counts, start, b).to(pos.device)


