r"""Distributed data parallel helpers for ``torchrun``.

``torchrun --nproc_per_node=N -m pointsam train CONFIG`` sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` then joins the
process group (``gloo`` on the CPU, ``nccl`` on CUDA). Without those variables
everything here is a single-process no-op, so the same trainer code runs both.

Training shards with :class:`torch.utils.data.DistributedSampler` (padded so
every rank takes the same number of steps); evaluation shards with
:class:`ShardSampler` (``rank::world``, no padding) so that every sample is
counted exactly once when the metric state is summed over ranks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = [
    "DistInfo",
    "init_distributed",
    "cleanup_distributed",
    "is_main",
    "all_reduce_sum",
    "barrier",
    "ShardSampler",
    "broadcast_object",
]


@dataclass(frozen=True)
class DistInfo:
    """Rank layout of this process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by ``torchrun``; pick the device.

    Args:
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.

    Returns:
        ``(info, device)``; under DDP on CUDA the device is ``cuda:LOCAL_RANK``.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise ValueError("train.device=cuda was asked for but CUDA is not available "
                         "here (torch.cuda.is_available() is False); use auto or cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    info = DistInfo(rank, world, local)
    dev = (
        torch.device(f"cuda:{local}" if use_cuda else "cpu")
        if use_cuda
        else (torch.device("cpu"))
    )
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return info, dev


def cleanup_distributed() -> None:
    """Leave the process group if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """True on rank 0 (or without a process group)."""
    return not _active() or dist.get_rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if _active():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over ranks in place and return it (no-op when single-process)."""
    if _active():
        dist.all_reduce(t)
    return t


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, ...`` of ``range(n)``: disjoint, no padding.

    Example:
        >>> list(ShardSampler(5, rank=1, world_size=2))
        [1, 3]
    """

    def __init__(self, n: int, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.rank, self.world_size = n, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))


class StepSampler(Sampler[int]):
    r"""An endless shuffled stream over ``range(n)`` for step-counted training.

    Pass :math:`e` is the permutation drawn by a generator seeded with
    ``seed * 1_000_003 + e``; rank r takes items ``r, r + world, ...`` of it
    (``n // world`` each, so every rank draws as many). The stream starts at
    this rank's item ``start`` (``step * per-rank batch size``), so a resumed
    run draws exactly what an uninterrupted one draws after that step.

    Example:
        >>> import itertools
        >>> a = list(itertools.islice(StepSampler(4, seed=0), 10))
        >>> b = list(itertools.islice(StepSampler(4, seed=0, start=6), 4))
        >>> sorted(a[:4]) == sorted(a[4:8]) == [0, 1, 2, 3], a[6:10] == b
        (True, True)
    """

    def __init__(self, n: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start: int = 0) -> None:
        if n < world_size:
            raise ValueError(f"the train split has {n} samples, fewer than the "
                             f"{world_size} processes that share it")
        self.n, self.seed, self.rank, self.world = n, seed, rank, world_size
        self.start = start

    def __iter__(self) -> Iterator[int]:
        per_pass = self.n // self.world
        epoch, skip = divmod(self.start, per_pass)
        while True:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            perm = torch.randperm(self.n, generator=g)[self.rank::self.world]
            yield from perm[skip:per_pass].tolist()
            epoch, skip = epoch + 1, 0


def step_batches(dataset: Any, batch_size: int, info: DistInfo, *, seed: int,
                 step: int = 0, num_workers: int = 0) -> Iterator[Any]:
    """Batches of ``dataset`` for a ``train.steps`` run, from ``step`` on: a PyG
    ``DataLoader`` over :class:`StepSampler` (``batch_size`` split over the
    ranks), so a resumed run draws exactly what an uninterrupted one draws.

    The loader has its own generator: creating its iterator draws a worker base
    seed, which must not come from (and shift) the global RNG a resume restores.
    """
    from torch_geometric.loader import DataLoader

    per_rank = max(1, batch_size // info.world_size)
    sampler = StepSampler(len(dataset), seed=seed, rank=info.rank,
                          world_size=info.world_size, start=step * per_rank)
    gen = torch.Generator().manual_seed(seed + 7919 * info.rank)
    return iter(DataLoader(dataset, batch_size=per_rank, sampler=sampler,
                           num_workers=num_workers, generator=gen))
