"""Data-loading benchmark: samples/s through a PyG DataLoader, and OFF sampling cost.

    python -m bench.data [--shapes 800] [--scans 20] [--batch-size 16]
                         [--workers 0 2] [--beams 64] [--azimuth 1800]
                         [--data ../shared/data]

Prints a markdown table of samples per second (one full pass after one warm-up
batch) for ModelNet10 in the 1024-point PCD conversion (first ``--shapes`` test
and train shapes, ``FixedPoints(1024)`` + ``NormalizeScale``) and for
SyntheticLidar (``--scans`` scans of ``--beams`` x ``--azimuth`` rays) through
``torch_geometric.loader.DataLoader`` with each ``--workers`` count, then the
one-off cost per shape of reading and sampling an OFF mesh to 1024 points and
caching it, against the cached read. Compare with a model's training step time:
loading should never be the bottleneck of a CPU epoch.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset
from torch_geometric.loader import DataLoader

from pointsam.data import FixedPoints, ModelNet, NormalizeScale, SyntheticLidar
from pointsam.data.transforms import Compose

SHARED = Path(
    os.environ.get(
        "POINTSAM_SHARED_DATA",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "data",
    )
)


def samples_per_second(ds: Dataset, batch_size: int, workers: int) -> tuple[float, int]:
    """Samples/s over one pass of ``ds`` (after the first batch), and points/sample."""
    loader = DataLoader(
        ds, batch_size=batch_size, num_workers=workers, persistent_workers=False
    )
    it = iter(loader)
    first = next(it)  # worker start-up and warm-up excluded
    n, pts = 0, first.num_nodes // first.num_graphs
    t = time.perf_counter()
    for b in it:
        n += b.num_graphs
    dt = time.perf_counter() - t
    return (n / dt if dt > 0 else float("nan")), pts


def off_cost(root: Path, repeat: int) -> tuple[float, float, int]:
    """Median seconds per shape: first access (read + sample + cache), cached access."""
    with tempfile.TemporaryDirectory() as cache:
        ds = ModelNet(root, "10", "train", format="off", cache_dir=cache)
        first, again = [], []
        for i in range(len(ds)):
            t = time.perf_counter()
            ds[i]
            first.append(time.perf_counter() - t)
            for _ in range(repeat):
                t = time.perf_counter()
                ds[i]
                again.append(time.perf_counter() - t)
        return statistics.median(first), statistics.median(again), len(ds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", type=int, default=800)
    ap.add_argument("--scans", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--beams", type=int, default=64)
    ap.add_argument("--azimuth", type=int, default=1800)
    ap.add_argument("--data", type=Path, default=SHARED)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    print(
        f"# data loading, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}\n"
    )
    print(
        "| dataset | points/sample | batch | "
        + " | ".join(f"{w} workers (samples/s)" for w in args.workers)
        + " |"
    )
    print("| --- | --- | --- | " + " | ".join("---" for _ in args.workers) + " |")
    pcd = args.data / "modelnet10_pcd_1024"
    if pcd.is_dir():
        mn = ModelNet(
            pcd, "10", "train", transform=Compose([FixedPoints(1024), NormalizeScale()])
        )
        step = max(1, len(mn) // args.shapes)  # spread over all classes
        sub = Subset(mn, list(range(0, len(mn), step))[: args.shapes])
        res = [samples_per_second(sub, args.batch_size, w) for w in args.workers]
        print(
            f"| ModelNet10 PCD ({len(sub)} shapes) | {res[0][1]} | {args.batch_size} | "
            + " | ".join(f"{r[0]:.0f}" for r in res)
            + " |"
        )
    else:
        print(f"| ModelNet10 PCD | - | - | not found at {pcd} |")
    lidar = SyntheticLidar(
        num_samples=args.scans, beams=args.beams, azimuth_steps=args.azimuth
    )
    bs = max(1, args.batch_size // 8)
    res = [samples_per_second(lidar, bs, w) for w in args.workers]
    print(
        f"| SyntheticLidar {args.beams}x{args.azimuth} ({args.scans} scans) | "
        f"~{res[0][1]} | {bs} | " + " | ".join(f"{r[0]:.1f}" for r in res) + " |"
    )

    off = args.data / "ModelNet10"
    if off.is_dir():
        first, cached, n = off_cost(off, 3)
        print(
            f"\nOFF mesh -> 1024 points + normals, median over {n} ModelNet10 meshes: "
            f"first access (parse + sample + cache) {first * 1e3:.1f} ms/shape, "
            f"cached {cached * 1e3:.2f} ms/shape"
        )


if __name__ == "__main__":
    main()
