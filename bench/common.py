"""Shared helpers for the benchmarks (not part of the test run)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch


def lidar_scan(n_beams: int = 64, n_azimuth: int = 1875, seed: int = 0) -> torch.Tensor:
    """A synthetic spinning-LiDAR scan (~n_beams * n_azimuth points), [N, 3] metres.

    Ground plane 1.7 m below the sensor, with walls/obstacles at a random range
    per azimuth sector; rays that hit nothing within 80 m are dropped.
    """
    g = torch.Generator().manual_seed(seed)
    elev = torch.linspace(math.radians(-24.8), math.radians(2.0), n_beams)
    az = torch.linspace(0, 2 * math.pi, n_azimuth + 1)[:-1]
    e, a = torch.meshgrid(elev, az, indexing="ij")  # [beams, az]
    sector = (a / (2 * math.pi) * 90).long()
    wall = 8 + 50 * torch.rand(90, generator=g)
    r_wall = wall[sector] / torch.cos(e).clamp(min=1e-3)
    r_ground = torch.where(e < 0, 1.7 / torch.sin(-e).clamp(min=1e-6),
                           torch.full_like(e, float("inf")))
    r = torch.minimum(r_wall, r_ground)
    r = r + 0.02 * torch.randn(r.shape, generator=g)
    d = torch.stack([torch.cos(e) * torch.cos(a), torch.cos(e) * torch.sin(a),
                     torch.sin(e)], -1)
    pts = (d * r.unsqueeze(-1)).reshape(-1, 3)
    return pts[(r.reshape(-1) < 80)].contiguous()


def timed(fn: Callable[[], object], sync: bool = False) -> float:
    """Wall time of one call of ``fn()`` (CUDA synchronised when ``sync``)."""
    if sync:
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - t


def median_time(fn: Callable[[], object], repeat: int = 3, warmup: int = 1,
                sync: bool = False) -> float:
    """Median wall time of ``fn()`` over ``repeat`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, sync) for _ in range(repeat))


def paired_times(fn_a: Callable[[], object], fn_b: Callable[[], object],
                 repeat: int = 5, sync: bool = False) -> tuple[float, float]:
    """Median wall times of ``fn_a`` and ``fn_b`` run in alternation.

    One warm-up call of each, then ``repeat`` rounds of (a, b): load from other
    processes falls on both alike, so ``median(b) / median(a)`` is a fair ratio.
    """
    fn_a()
    fn_b()
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(repeat):
        ta.append(timed(fn_a, sync))
        tb.append(timed(fn_b, sync))
    return statistics.median(ta), statistics.median(tb)
