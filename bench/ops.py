"""Neighbour-search benchmark: every installed backend of pointsam.ops.

    python -m bench.ops [--repeat 3] [--device cpu|cuda] [--slow]

Prints a markdown table (median of ``--repeat`` runs) for kNN (k = 16) on one
synthetic ~120k-point LiDAR scan and on 32 clouds of 1024 points, and FPS
120k -> 4096 and 32 x 1024 -> 512, with the ratio of ``auto`` to torch-cluster
when torch-cluster is installed. Backends that would take minutes (the chunked
pure-torch kNN on 120k points on a CPU, ~65 s) run only with ``--slow``.
"""

from __future__ import annotations

import argparse
import platform

import torch

from bench.common import lidar_scan, median_time, paired_times
from pointsam.ops import available_fps_backends, available_knn_backends, fps, knn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--slow", action="store_true", help="also run minute-long cases")
    args = ap.parse_args()
    dev = torch.device(args.device)
    sync = dev.type == "cuda"

    scan = lidar_scan().to(dev)
    g = torch.Generator().manual_seed(1)
    small = torch.randn(32 * 1024, 3, generator=g).to(dev)
    sb = torch.arange(32, device=dev).repeat_interleave(1024)
    one = torch.zeros(scan.size(0), dtype=torch.long, device=dev)

    def run_knn(backend: str, pos: torch.Tensor, batch: torch.Tensor) -> float:
        return median_time(lambda: knn(pos, 16, batch, backend=backend),
                           args.repeat, sync=sync)

    def run_fps(backend: str, pos: torch.Tensor, batch: torch.Tensor, num: int) -> float:
        return median_time(lambda: fps(pos, batch, num=num, backend=backend),
                           args.repeat, sync=sync)

    rows: dict[str, list[str]] = {}
    times: dict[tuple[str, str], float] = {}
    cpu = dev.type == "cpu"
    for be in ["auto", *available_knn_backends()]:
        if not cpu and be in ("open3d", "scipy"):
            continue
        r = rows.setdefault(be, ["-"] * 4)
        big_ok = be not in ("dense",) and (be != "chunked" or not cpu or args.slow)
        if big_ok:
            times[be, "knn_big"] = t = run_knn(be, scan, one)
            r[0] = f"{t:.3f} s"
        elif be == "chunked":
            r[0] = "(--slow)"
        times[be, "knn_small"] = t = run_knn(be, small, sb)
        r[1] = f"{t:.3f} s"
    for be in ["auto", *available_fps_backends()]:
        if not cpu and be == "fpsample":
            continue
        r = rows.setdefault(be, ["-"] * 4)
        times[be, "fps_big"] = t = run_fps(be, scan, one, 4096)
        r[2] = f"{t:.3f} s"
        times[be, "fps_small"] = t = run_fps(be, small, sb, 512)
        r[3] = f"{t:.3f} s"

    print(f"device: {dev} ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads), scan: {scan.size(0)} points, "
          f"median of {args.repeat}\n")
    print(f"| backend | kNN k=16, {scan.size(0) // 1000}k scan | kNN 32 x 1024 "
          f"| FPS {scan.size(0) // 1000}k -> 4096 | FPS 32 x 1024 -> 512 |")
    print("| --- | --- | --- | --- | --- |")
    for be, r in rows.items():
        print(f"| {be} | " + " | ".join(r) + " |")
    if ("cluster", "knn_big") in times:
        # the ratios: auto and torch-cluster timed in alternation (one call of
        # each per round), so that a busy machine slows both alike
        cases = {
            "knn_big": (lambda be: knn(scan, 16, one, backend=be)),
            "knn_small": (lambda be: knn(small, 16, sb, backend=be)),
            "fps_big": (lambda be: fps(scan, one, num=4096, backend=be)),
            "fps_small": (lambda be: fps(small, sb, num=512, backend=be)),
        }
        targets = {"knn_big": 4.0, "fps_big": 15.0}
        print(f"\nratios, auto and cluster interleaved, median of "
              f"{max(5, args.repeat)} rounds:")
        for key, call in cases.items():
            t_auto, t_cl = paired_times(lambda c=call: c("auto"),
                                        lambda c=call: c("cluster"),
                                        max(5, args.repeat), sync=sync)
            ratio = t_cl / t_auto
            line = (f"auto_vs_torch_cluster_{key} speed={ratio:.2f}x "
                    f"(auto {t_auto:.3f} s, cluster {t_cl:.3f} s)")
            if key in targets:
                line += (f" target>={targets[key]:.0f}x "
                         f"{'ok' if ratio >= targets[key] else 'MISSED'}")
            print(line)
    else:
        print("\ntorch-cluster is not installed: no ratio to it "
              "(pip install torch-cluster, ~23 min build on 2 cores).")


if __name__ == "__main__":
    main()
