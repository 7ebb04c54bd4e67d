r"""k-nearest-neighbour search on ragged batches, with several backends.

One API, :func:`knn`, and backends chosen by what is installed and by the size and
device of the input (see DESIGN.md section 7):

==============  ==============================================================
``"dense"``     batched ``[B, M_max, N_max]`` distances + ``topk`` (many small
                clouds, CPU or GPU)
``"chunked"``   per cloud, query blocks of bounded memory (GPU, export, large
                clouds without Open3D)
``"pykdtree"``  pykdtree's OpenMP kd-tree per cloud (CPU; the fastest here)
``"open3d"``    Open3D ``core.nns.NearestNeighborSearch`` per cloud (CPU)
``"scipy"``     SciPy ``cKDTree`` per cloud, all cores (CPU)
``"cluster"``   ``torch_cluster.knn`` when installed
``"pyg"``       ``torch_geometric.nn.pool.knn`` when pyg-lib is installed
==============  ==============================================================

Every backend returns the same neighbour *sets* (up to ties at equal distance),
sorted by increasing distance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ._validate import check_batch, check_pos, check_positive_int, is_trusted
from .batch import batch_size_of, batch_to_ptr, default_batch, to_dense
from .dilation import dilate_table
from .fixed import fixed_batch_size, knn_dense

__all__ = ["knn", "radius", "knn_backends", "available_knn_backends"]

_DENSE_MAX_POINTS = 4096  # auto on a GPU: clouds up to this size use "dense"
_DENSE_MAX_POINTS_CPU = 128  # auto on the CPU: tiny clouds skip the per-cloud loop
_BLOCK = 1 << 24  # elements of one distance block (64 MB in float32)


# ----------------------------------------------------------------------------
# backends: each returns idx [M, kk] int64 global indices into pos, -1 where a
# cloud has fewer than kk points, rows sorted by increasing distance.
# ----------------------------------------------------------------------------


def _sqdist(q: Tensor, p: Tensor) -> Tensor:
    r"""Exact squared distances :math:`\sum_a (q_{ia} - p_{ja})^2`, [..., M, N].

    Computed from coordinate differences, never as :math:`|q|^2 + |p|^2 - 2 q
    \cdot p`: that form loses the small distances of a tight cluster to float32
    rounding of the large squared norms (a cloud spread over +-50 m has
    :math:`|q|^2 \approx 2500` and an absolute error near :math:`3 \cdot
    10^{-4}`, so millimetre neighbours come out in random order).

    Args:
        q: Queries :math:`(..., M, 3)`.
        p: Points :math:`(..., N, 3)`.
    """
    d = (q[..., :, None, 0] - p[..., None, :, 0]).square_()  # [..., M, N]
    d += (q[..., :, None, 1] - p[..., None, :, 1]).square_()
    d += (q[..., :, None, 2] - p[..., None, :, 2]).square_()
    return d


def _knn_dense(pos: Tensor, batch: Tensor, query: Tensor, query_batch: Tensor,
               kk: int, b: int) -> Tensor:
    if b == 1:  # one cloud: no padding (to_dense of a 66k-point query costs ms)
        kq = min(kk, pos.size(0))
        out = torch.full((query.size(0), kk), -1, dtype=torch.long, device=pos.device)
        step = max(1, _BLOCK // max(1, pos.size(0)))
        for s in range(0, query.size(0), step):
            d = _sqdist(query[s:s + step], pos)  # [m', N]
            dist, idx = d.topk(kq, dim=-1, largest=False, sorted=True)  # [m', kq]
            out[s:s + step, :kq] = idx.masked_fill(torch.isinf(dist), -1)
        return out  # [M, kk]
    p, pmask = to_dense(pos, batch, batch_size=b)  # [B, N_max, 3], [B, N_max]
    q, qmask = to_dense(query, query_batch, batch_size=b)  # [B, M_max, 3]
    n_max, m_max = p.size(1), q.size(1)
    kq = min(kk, n_max)
    ptr = batch_to_ptr(batch, b)  # [B + 1]
    out = torch.full((b, m_max, kk), -1, dtype=torch.long, device=pos.device)
    step = max(1, _BLOCK // max(1, n_max * m_max))
    for s in range(0, b, step):
        e = min(b, s + step)
        d = _sqdist(q[s:e], p[s:e])  # [b', M_max, N_max]
        d = d.masked_fill(~pmask[s:e].unsqueeze(1), float("inf"))
        dist, idx = d.topk(kq, dim=-1, largest=False, sorted=True)  # [b', M_max, kq]
        idx = idx + ptr[s:e].view(-1, 1, 1)
        out[s:e, :, :kq] = idx.masked_fill(torch.isinf(dist), -1)
    return out[qmask]  # [M, kk]


def _knn_chunked(pos: Tensor, batch: Tensor, query: Tensor, query_batch: Tensor,
                 kk: int, b: int) -> Tensor:
    """Per cloud, blocks of queries against all of the cloud's points.

    Distances are exact coordinate differences (:func:`_sqdist`), in blocks of at
    most ``2^26`` (GPU) or ``2^22`` (CPU) entries, so memory stays bounded.
    """
    ptr = batch_to_ptr(batch, b).tolist()
    qptr = batch_to_ptr(query_batch, b).tolist()
    out = torch.full((query.size(0), kk), -1, dtype=torch.long, device=pos.device)
    budget = (1 << 26) if pos.device.type == "cuda" else (1 << 22)
    for i in range(b):
        p = pos[ptr[i]:ptr[i + 1]]  # [n_b, 3]
        if p.size(0) == 0:
            continue
        kq = min(kk, p.size(0))
        rows = max(1, budget // p.size(0))
        for s in range(qptr[i], qptr[i + 1], rows):
            e = min(qptr[i + 1], s + rows)
            d = _sqdist(query[s:e], p)  # [m', n_b]
            idx = d.topk(kq, dim=1, largest=False, sorted=True).indices  # [m', kq]
            out[s:e, :kq] = idx + ptr[i]
    return out


def _per_cloud_cpu(search: Callable[[np.ndarray, np.ndarray, int], np.ndarray]
                   ) -> Callable[..., Tensor]:
    def run(pos: Tensor, batch: Tensor, query: Tensor, query_batch: Tensor,
            kk: int, b: int) -> Tensor:
        if pos.device.type != "cpu":
            raise ValueError("this knn backend runs on the CPU only; "
                             "use backend='chunked' or 'dense' on a GPU")
        ptr = batch_to_ptr(batch, b).tolist()
        qptr = batch_to_ptr(query_batch, b).tolist()
        # each cloud is centred on its mean in float64, then searched in float32:
        # float64 input far from the origin (UTM, ECEF) keeps its precision
        pn = pos.detach().numpy()
        qn = query.detach().numpy()

        def centred(a: np.ndarray, c: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(a - c, dtype=np.float32)

        if b == 1 and pn.shape[0] >= kk:  # one full cloud: no padded table
            c = pn.mean(0, keepdims=True, dtype=np.float64)
            return torch.from_numpy(search(centred(pn, c), centred(qn, c), kk))
        out = np.full((query.size(0), kk), -1, dtype=np.int64)
        for i in range(b):
            n_b = ptr[i + 1] - ptr[i]
            if n_b == 0 or qptr[i + 1] == qptr[i]:
                continue
            p = pn[ptr[i]:ptr[i + 1]]
            c = p.mean(0, keepdims=True, dtype=np.float64)
            kq = min(kk, n_b)
            idx = search(centred(p, c), centred(qn[qptr[i]:qptr[i + 1]], c), kq)
            out[qptr[i]:qptr[i + 1], :kq] = idx + ptr[i]
        return torch.from_numpy(out)
    return run


def _o3d_search(p: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    import open3d.core as o3c

    nns = o3c.nns.NearestNeighborSearch(o3c.Tensor.from_numpy(p))
    nns.knn_index()
    idx, _ = nns.knn_search(o3c.Tensor.from_numpy(q), k)
    return idx.numpy().astype(np.int64, copy=False).reshape(q.shape[0], k)


def _pykdtree_search(p: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    from pykdtree.kdtree import KDTree

    _, idx = KDTree(p).query(q, k=k)  # sorted by distance, OpenMP over queries
    return np.asarray(idx, dtype=np.int64).reshape(q.shape[0], k)


def _scipy_search(p: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    from scipy.spatial import cKDTree

    _, idx = cKDTree(p).query(q, k=k, workers=-1)
    return np.asarray(idx, dtype=np.int64).reshape(q.shape[0], k)


def _edges_to_table(row: Tensor, col: Tensor, query: Tensor, pos: Tensor,
                    kk: int) -> Tensor:
    """A [2, E] edge list (row = query, col = neighbour) to a distance-sorted table."""
    m = query.size(0)
    d = ((query[row] - pos[col]) ** 2).sum(-1)  # [E]
    order = torch.argsort(d, stable=True)
    order = order[torch.argsort(row[order], stable=True)]  # by row, then distance
    row, col = row[order], col[order]
    counts = torch.bincount(row, minlength=m)
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(row.numel(), device=row.device) - start[row]
    out = torch.full((m, kk), -1, dtype=torch.long, device=pos.device)
    keep = slot < kk
    out[row[keep], slot[keep]] = col[keep]
    return out


def _knn_cluster(pos: Tensor, batch: Tensor, query: Tensor, query_batch: Tensor,
                 kk: int, b: int) -> Tensor:
    import torch_cluster

    row, col = torch_cluster.knn(pos, query, kk, batch, query_batch)
    return _edges_to_table(row, col, query, pos, kk)


def _knn_pyg(pos: Tensor, batch: Tensor, query: Tensor, query_batch: Tensor,
             kk: int, b: int) -> Tensor:
    from torch_geometric.nn.pool import knn as pyg_knn

    row, col = pyg_knn(pos, query, kk, batch, query_batch)
    return _edges_to_table(row, col, query, pos, kk)


_BACKENDS: dict[str, Callable[..., Tensor]] = {
    "dense": _knn_dense,
    "chunked": _knn_chunked,
    "pykdtree": _per_cloud_cpu(_pykdtree_search),
    "open3d": _per_cloud_cpu(_o3d_search),
    "scipy": _per_cloud_cpu(_scipy_search),
    "cluster": _knn_cluster,
    "pyg": _knn_pyg,
}
knn_backends: tuple[str, ...] = tuple(_BACKENDS)
_AVAILABLE: dict[str, bool] = {}


def _is_available(name: str) -> bool:
    if name in ("dense", "chunked"):
        return True
    if name not in _AVAILABLE:
        try:
            if name == "open3d":
                import open3d.core  # noqa: F401
            elif name == "pykdtree":
                import pykdtree.kdtree  # noqa: F401
            elif name == "scipy":
                import scipy.spatial  # noqa: F401
            elif name == "cluster":
                import torch_cluster  # noqa: F401
            elif name == "pyg":
                import pyg_lib  # noqa: F401
            _AVAILABLE[name] = True
        except Exception:  # ImportError, or a broken binary (OSError)
            _AVAILABLE[name] = False
    return _AVAILABLE[name]


def available_knn_backends() -> list[str]:
    """The knn backends that can run here."""
    return [n for n in knn_backends if _is_available(n)]


def _auto(pos: Tensor, n_max: int) -> str:
    if pos.device.type != "cpu":
        if _is_available("cluster"):
            return "cluster"
        return "dense" if n_max <= _DENSE_MAX_POINTS else "chunked"
    if n_max <= _DENSE_MAX_POINTS_CPU:
        return "dense"
    for name in ("pykdtree", "open3d", "scipy", "cluster"):
        if _is_available(name):
            return name
    return "chunked"


def _resolve_backend(backend: str, pos: Tensor, n_max: int) -> str:
    if backend == "auto":
        return _auto(pos, n_max)
    if backend not in _BACKENDS:
        raise ValueError(f"unknown knn backend {backend!r}; "
                         f"choose from {['auto', *knn_backends]}")
    if not _is_available(backend):
        hint = {"cluster": "pip install torch-cluster (or the conda pytorch-cluster)",
                "pyg": "install pyg-lib for your torch/CUDA",
                "open3d": "pip install open3d", "scipy": "pip install scipy",
                "pykdtree": "pip install pykdtree"}[backend]
        raise ValueError(f"knn backend {backend!r} is not installed: {hint}")
    return backend


def _prepare(pos: Tensor, batch: Tensor | None, query: Tensor | None,
             query_batch: Tensor | None, scale: Sequence[float] | Tensor | None,
             batch_size: int | None) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    check = not is_trusted()  # value checks: at the boundary only
    if check:
        check_pos(pos, "pos")
        check_batch(batch, pos.size(0), "batch")
    if query is None:
        if query_batch is not None:
            raise ValueError("query_batch given without query")
        query, query_batch = pos, batch
    else:
        if check:
            check_pos(query, "query", allow_empty=True)
        if (batch is None) != (query_batch is None):
            raise ValueError("give both batch and query_batch, or neither")
        if check:
            check_batch(query_batch, query.size(0), "query_batch")
    if batch is None:
        batch, query_batch = default_batch(None, pos), default_batch(None, query)
    assert query_batch is not None
    if query.dtype != pos.dtype:
        raise ValueError(f"query dtype {query.dtype} differs from pos dtype {pos.dtype}")
    b = max(batch_size_of(batch, batch_size),
            batch_size_of(query_batch, batch_size))  # validates batch_size
    if scale is not None:
        s = torch.as_tensor(scale, dtype=pos.dtype, device=pos.device).flatten()
        if s.numel() != 3 or (check and (not bool(torch.isfinite(s).all())
                                         or bool((s <= 0).any()))):
            raise ValueError(f"scale must be 3 positive finite numbers, got {scale!r}")
        pos, query = pos * s, query * s
    if pos.dtype in (torch.float16, torch.bfloat16):
        pos, query = pos.float(), query.float()
    return pos, batch, query, query_batch, b


def knn(pos: Tensor, k: int, batch: Tensor | None = None, *,
        query: Tensor | None = None, query_batch: Tensor | None = None,
        dilation: int = 1, random_dilation: bool = False,
        generator: torch.Generator | None = None,
        scale: Sequence[float] | Tensor | None = None, backend: str = "auto",
        batch_size: int | None = None) -> tuple[Tensor, Tensor]:
    r"""The k nearest neighbours in ``pos`` of each query point, per cloud.

    A query point only sees points of its own cloud. With ``query=None`` the
    queries are the points of ``pos`` themselves and **each point is its own first
    neighbour** (distance 0). Rows are sorted by increasing distance.

    Dilation (`"Dilated Point Convolutions" <https://arxiv.org/abs/1904.12023>`_,
    DeepGCN): the ``k * dilation`` nearest are found and every ``dilation``-th is
    kept, :math:`\mathcal{N}^{(d)}_i = \{j_0, j_d, j_{2d}, \dots, j_{(k-1)d}\}`.
    With ``random_dilation=True`` (training) ``k`` of the ``k * dilation`` are
    drawn uniformly instead (always keeping the nearest). A cloud with fewer than
    ``k * dilation`` points uses the largest stride ``<= dilation`` that still
    gives ``min(k, n_b)`` neighbours.

    ``scale`` :math:`(s_x, s_y, s_z)` stretches the metric:
    :math:`d^2 = \sum_a s_a^2 (p_{ia} - p_{ja})^2` (the anisotropic tubes of
    :class:`~pointsam.nn.AxialAttention`).

    Args:
        pos: Points :math:`(N, 3)`.
        k: Neighbours per query (>= 1).
        batch: Sorted cloud ids :math:`(N)`; ``None`` means one cloud.
        query: Query points :math:`(M, 3)`; default ``pos``.
        query_batch: Cloud ids of the queries :math:`(M)`, needed with ``batch``.
        dilation: Dilation rate d (>= 1).
        random_dilation: Draw k of the k*d nearest at random (stochastic dilation).
        generator: Random generator for ``random_dilation``.
        scale: Per-axis metric stretch (3 positive numbers).
        backend: ``"auto"`` or one of :data:`knn_backends`.
        batch_size: Number of clouds B, to skip a host sync.

    Returns:
        ``(nbr_idx, nbr_mask)``: int64 :math:`(M, k)` indices into ``pos`` and bool
        :math:`(M, k)`, ``False`` where a cloud has fewer than k points; masked
        entries repeat the row's nearest neighbour, so gathers stay in range.

    Example:
        >>> pos = torch.tensor([[0., 0, 0], [1, 0, 0], [3, 0, 0], [0, 0, 9]])
        >>> idx, mask = knn(pos, 2, torch.tensor([0, 0, 0, 1]))
        >>> idx.tolist(), mask.tolist()
        ([[0, 1], [1, 0], [2, 1], [3, 3]], [[True, True], [True, True], [True, True], [True, False]])
    """
    check_positive_int(k, "k")
    check_positive_int(dilation, "dilation")
    self_query = query is None
    pos, batch, query, query_batch, b = _prepare(pos, batch, query, query_batch,
                                                 scale, batch_size)
    kk = k * dilation
    if fixed_batch_size() is not None:  # B clouds of n points: dense, traceable
        table = _knn_fixed(pos, query, kk)  # [M, kk]
        if self_query:
            me = torch.arange(table.size(0), device=table.device)  # [M]
            table = _self_first_rows(table, me)  # no data-dependent branch
        return dilate_table(table, k, dilation, random_dilation, generator)
    m = query.size(0)
    if m == 0:
        empty = torch.empty(0, k, dtype=torch.long, device=pos.device)
        return empty, empty.bool()
    counts = torch.bincount(batch, minlength=b)  # [B]
    qcounts = torch.bincount(query_batch, minlength=b)
    if not is_trusted() and bool(((counts == 0) & (qcounts > 0)).any()):
        bad = torch.nonzero((counts == 0) & (qcounts > 0)).flatten().tolist()
        raise ValueError(f"query points of clouds {bad} have no points in pos")
    name = _resolve_backend(backend, pos, int(counts.max()))
    table = _BACKENDS[name](pos, batch, query, query_batch, kk, b)  # [M, kk]
    table = table.to(pos.device)
    if self_query:
        table = _self_first(table)
    return dilate_table(table, k, dilation, random_dilation, generator)


def _knn_fixed(pos: Tensor, query: Tensor, kk: int) -> Tensor:
    """Inside :func:`~pointsam.ops.fixed_size`: :func:`knn_dense` per cloud, as
    global indices with ``-1`` padding, [M, kk]."""
    b = fixed_batch_size()
    p, q = pos.view(b, -1, 3), query.view(b, -1, 3)  # [B, n, 3], [B, m, 3]
    local = knn_dense(p, kk, q)  # [B, m, kk]
    off = (torch.arange(b, device=pos.device) * p.size(1)).view(-1, 1, 1)  # [B, 1, 1]
    table = torch.where(local >= 0, local + off, local)  # [B, m, kk]
    return table.flatten(0, 1)  # [B m, kk]


def _self_first(table: Tensor) -> Tensor:
    """Put each point itself in slot 0 of its own row (``query=None``).

    Duplicate points tie at distance 0, so a backend may list a twin before the
    point itself, or (with more than kk twins) leave it out. Slots ``0..j`` of a
    row whose point sits at slot ``j`` all hold distance 0, so swapping slots 0
    and ``j`` keeps the row sorted; a row without its point gets it in slot 0 in
    place of a twin at the same distance.
    """
    m = table.size(0)
    me = torch.arange(m, device=table.device)  # [M]
    wrong = table[:, 0] != me  # [M]
    if not bool(wrong.any()):  # the usual case: no twins ahead of a point
        return table
    rows = wrong.nonzero().flatten()  # [R]
    return table.index_copy(0, rows, _self_first_rows(table[rows], me[rows]))


def _self_first_rows(table: Tensor, me: Tensor) -> Tensor:
    """:func:`_self_first` on a subset of rows: ``table`` [R, kk], ``me`` [R]."""
    m = table.size(0)
    hit = table == me.unsqueeze(1)  # [R, kk]
    j = hit.to(torch.uint8).argmax(dim=1)  # [R], 0 where the point is missing
    first = table[:, 0].clone()  # [R]
    table = table.clone()
    table[torch.arange(m, device=table.device), j] = first  # old slot 0 -> slot j
    table[:, 0] = me
    return table


def radius(pos: Tensor, r: float, batch: Tensor | None = None, *,
           query: Tensor | None = None, query_batch: Tensor | None = None,
           max_num_neighbors: int = 32, backend: str = "auto",
           batch_size: int | None = None) -> tuple[Tensor, Tensor]:
    r"""Neighbours within distance ``r``, capped at the ``max_num_neighbors`` nearest.

    The ball query of PointNet++, as a fixed-width table: the nearest
    ``max_num_neighbors`` points of the query's cloud with :math:`\|p_j - q_i\|
    \le r`, sorted by distance; the rest of the row is masked. Unlike a ball query
    that keeps whichever points it meets first, the kept points are the nearest.

    Returns:
        ``(nbr_idx, nbr_mask)``, :math:`(M, \text{max\_num\_neighbors})`; as in
        :func:`knn`, masked entries repeat the row's nearest point.

    Example:
        >>> pos = torch.tensor([[0., 0, 0], [0.5, 0, 0], [3, 0, 0]])
        >>> radius(pos, 1.0, max_num_neighbors=3)[1].tolist()
        [[True, True, False], [True, True, False], [True, False, False]]
    """
    if isinstance(r, bool) or not (isinstance(r, (int, float)) and math.isfinite(r)
                                   and r > 0):
        raise ValueError(f"r must be a positive finite number, got {r!r}")
    if isinstance(max_num_neighbors, bool) or not isinstance(max_num_neighbors, int) \
            or max_num_neighbors < 1:
        raise ValueError("max_num_neighbors must be an integer >= 1, got "
                         f"{max_num_neighbors!r}")
    idx, mask = knn(pos, max_num_neighbors, batch, query=query,
                    query_batch=query_batch, backend=backend, batch_size=batch_size)
    q = pos if query is None else query
    wt = torch.promote_types(pos.dtype, torch.float32)  # float64 stays float64
    d2 = ((q.unsqueeze(1).to(wt) - pos[idx].to(wt)) ** 2).sum(-1)  # [M, K]
    mask = mask & (d2 <= r * r)
    return torch.where(mask, idx, idx[:, :1]), mask  # masked: repeat the nearest
