"""Ragged-batch helpers: ``batch`` <-> ``ptr``, dense padding and back."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["default_batch", "batch_to_ptr", "ptr_to_batch", "batch_size_of", "to_dense", "from_dense"]


def default_batch(batch: Tensor | None, ref: Tensor) -> Tensor:
    r"""``batch`` itself, or the one-cloud batch vector ``zeros(N)`` for ``ref`` ``[N, *]``.

    The single place where "no ``batch`` means one cloud" is spelled out.

    Example:
        >>> default_batch(None, torch.zeros(3, 2))
        tensor([0, 0, 0])
        >>> default_batch(torch.tensor([0, 1]), torch.zeros(2, 3))
        tensor([0, 1])
    """
    if batch is not None:
        return batch
    return torch.zeros(ref.size(0), dtype=torch.long, device=ref.device)  # [N]


def batch_size_of(batch: Tensor | None, batch_size: int | None = None) -> int:
    """Number of clouds B: ``batch.max() + 1``, or ``batch_size`` when given.

    A given ``batch_size`` must be an integer that covers every cloud id in
    ``batch`` (``>= batch.max() + 1``; larger means trailing empty clouds);
    anything else is a ``ValueError``, never a silently wrong partition. The
    cover check reads ``batch.max()`` (a host sync) and is skipped inside
    :func:`pointsam.ops.trusted`, where the boundary computed ``batch_size``.
    """
    from ._validate import is_trusted

    if isinstance(batch_size, torch.SymInt):  # traced: the symbolic number of clouds
        return batch_size  # type: ignore[return-value]
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
                or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if batch is not None and batch.numel() and not is_trusted() \
                and int(batch.max()) >= batch_size:
            raise ValueError(f"batch_size={batch_size} but batch holds cloud id "
                             f"{int(batch.max())}; batch_size must be >= "
                             "batch.max() + 1")
        return batch_size
    if batch is None or batch.numel() == 0:
        return 1
    return int(batch.max()) + 1


def batch_to_ptr(batch: Tensor, batch_size: int | None = None) -> Tensor:
    r"""CSR offsets ``ptr`` [B + 1] (leading 0) of a sorted ``batch`` vector.

    Example:
        >>> batch_to_ptr(torch.tensor([0, 0, 1, 1, 1]))
        tensor([0, 2, 5])
    """
    b = batch_size_of(batch, batch_size)
    counts = torch.bincount(batch, minlength=b)  # [B]
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def ptr_to_batch(ptr: Tensor) -> Tensor:
    """Inverse of :func:`batch_to_ptr`."""
    counts = ptr[1:] - ptr[:-1]
    return torch.repeat_interleave(torch.arange(counts.numel(), device=ptr.device), counts)


def to_dense(x: Tensor, batch: Tensor | None = None, *, fill_value: float = 0.0,
             batch_size: int | None = None,
             max_num_points: int | None = None) -> tuple[Tensor, Tensor]:
    r"""Pad a ragged tensor to ``[B, N_max, C]`` with a mask ``[B, N_max]``.

    The model is PyG's ``to_dense_batch``.

    Example:
        >>> d, m = to_dense(torch.arange(3.).view(3, 1), torch.tensor([0, 1, 1]))
        >>> d.shape, m.tolist()
        (torch.Size([2, 2, 1]), [[True, False], [True, True]])
    """
    from ._validate import check_batch, is_trusted

    if not is_trusted():
        check_batch(batch, x.size(0), "batch")  # sorted: rows of a cloud contiguous
    if max_num_points is not None and (isinstance(max_num_points, bool) or not
                                       isinstance(max_num_points, int)
                                       or max_num_points < 1):
        raise ValueError(f"max_num_points must be an integer >= 1, got "
                         f"{max_num_points!r}")
    batch = default_batch(batch, x)  # [N]
    b = batch_size_of(batch, batch_size)
    counts = torch.bincount(batch, minlength=b)  # [B]
    n_max = int(counts.max()) if max_num_points is None else max_num_points
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    local = torch.arange(x.size(0), device=x.device) - ptr[batch]  # [N]
    keep = local < n_max
    dense = x.new_full((b, n_max) + tuple(x.shape[1:]), fill_value)
    mask = torch.zeros(b, n_max, dtype=torch.bool, device=x.device)
    dense[batch[keep], local[keep]] = x[keep]
    mask[batch[keep], local[keep]] = True
    return dense, mask


def from_dense(dense: Tensor, mask: Tensor) -> Tensor:
    """Inverse of :func:`to_dense`: the rows where ``mask`` is true, [N, ...]."""
    return dense[mask]
