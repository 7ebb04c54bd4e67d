r"""k nearest neighbours in feature space, per cloud (DGCNN's dynamic graph)."""

from __future__ import annotations

import torch
from torch import Tensor

from ._validate import check_batch, check_features, check_positive_int, is_trusted
from .batch import batch_size_of, batch_to_ptr, default_batch, to_dense
from .dilation import dilate_table

__all__ = ["feature_knn"]

_BLOCK = 1 << 24  # distance entries per block (64 MB in float32)


@torch.no_grad()
def feature_knn(x: Tensor, k: int, batch: Tensor | None = None, *,
                dilation: int = 1, batch_size: int | None = None,
                block: int = _BLOCK) -> tuple[Tensor, Tensor]:
    r"""k nearest neighbours in feature space, per cloud (DGCNN's dynamic graph).

    .. math::
        \mathcal{N}(i) = \operatorname{top-}k_{j:\, b_j = b_i}\;
        -\|\mathbf{x}_i - \mathbf{x}_j\|^2

    ranked by :math:`\|\mathbf{x}_j\|^2 - 2\,\mathbf{x}_i^\top \mathbf{x}_j`
    (the squared distance less the row constant :math:`\|\mathbf{x}_i\|^2`,
    one ``baddbmm``) on clouds padded by :func:`pointsam.ops.to_dense`, several
    clouds per ``bmm`` while they fit ``block`` entries, and query-row chunks
    for a cloud that does not; then :func:`pointsam.ops.dilate` keeps every
    d-th of the :math:`k d` nearest. The cost is :math:`O(\sum_b n_b^2 C)` time
    and :math:`O(\text{block})` memory; use a coordinate kNN
    (:func:`pointsam.ops.knn`) for large scans. No gradient flows through the
    indices. On 3-D coordinates it gives the neighbour sets of
    :func:`pointsam.ops.knn`.

    Args:
        x: Features :math:`(N, C)`.
        k: Neighbours (self included, at distance 0).
        batch: Sorted cloud ids :math:`(N)`; ``None`` means one cloud.
        dilation: Dilation rate d (keep every d-th of the k*d nearest).
        batch_size: Number of clouds B, to skip a host sync.
        block: Distance entries computed at once.

    Returns:
        ``(nbr_idx, nbr_mask)`` int64 / bool :math:`(N, k)` (masked entries repeat
        the nearest), rows sorted by distance.

    Shapes:
        - **input:** x :math:`(N, C)`, batch :math:`(N)` (optional)
        - **output:** nbr_idx, nbr_mask :math:`(N, k)`

    Example:
        >>> x = torch.tensor([[0.], [1.], [5.], [0.], [9.]])
        >>> idx, mask = feature_knn(x, 2, torch.tensor([0, 0, 0, 1, 1]))
        >>> idx.tolist(), bool(mask.all())
        ([[0, 1], [1, 0], [2, 1], [3, 4], [4, 3]], True)
    """
    check_positive_int(k, "k")
    check_positive_int(dilation, "dilation")
    check_features(x, x.size(0) if isinstance(x, Tensor) else 0, "x")
    if x.size(0) == 0:
        raise ValueError("x is empty (0 points)")
    if not is_trusted():  # value check: at the boundary only
        check_batch(batch, x.size(0), "batch")
    batch = default_batch(batch, x)  # [N]
    b = batch_size_of(batch, batch_size)
    xf = x.detach().float()
    dense, dmask = to_dense(xf, batch, batch_size=b)  # [B, N_max, C]
    n_max = dense.size(1)
    kk = min(k * dilation, n_max)
    ptr = batch_to_ptr(batch, b)  # [B + 1]
    # the row term ||x_i||^2 does not change a row's ranking: rank by
    # ||x_j||^2 - 2 x_i.x_j, one baddbmm; padding columns get +inf
    sq = (dense * dense).sum(-1).masked_fill(~dmask, float("inf"))  # [B, N_max]
    table = torch.full((b, n_max, k * dilation), -1, dtype=torch.long, device=x.device)
    rows = max(1, min(n_max, block // max(1, n_max)))  # query rows per block
    clouds = max(1, block // max(1, n_max * n_max))  # clouds per block
    for s in range(0, b, clouds):
        e = min(b, s + clouds)
        keys_t = dense[s:e].transpose(1, 2)  # [b', C, N_max]
        for r in range(0, n_max, rows):
            q = dense[s:e, r:r + rows]  # [b', r', C]
            d = torch.baddbmm(sq[s:e].unsqueeze(1), q, keys_t,
                              alpha=-2.0)  # [b', r', N_max]
            dist, idx = d.topk(kk, dim=-1, largest=False, sorted=True)  # [b', r', kk]
            idx = (idx + ptr[s:e].view(-1, 1, 1)).masked_fill(torch.isinf(dist), -1)
            table[s:e, r:r + rows, :kk] = idx
    return dilate_table(table[dmask], k, dilation)  # [N, k]
