"""The HTML viewer's peak memory and time on large scans (not a test).

    python -m bench.viewer_memory [--sizes 100000 1000000 10000000]
                                  [--attention local_global] [--max-points N]
                                  [--quick]

Each size runs in a fresh child process (``python -m bench.viewer_memory
--child N``): a synthetic spinning-LiDAR scan of N points
(:func:`bench.common.lidar_scan`, resampled to exactly N), a tiny untrained
``pointnet2_lite_semseg`` (``--attention``, default ``local_global``: its
recorded global-token weights make it the heaviest to view) and one call of
:func:`pointsam.viz.to_html` with the viewer's default point budget
(``--max-points`` to change it; ``0``: every point). The child reports its own
peak resident memory (``ru_maxrss``), the wall time of ``to_html`` (the
model's forward pass under the attention recorder, the scene, the page) and
the page size. A size the machine has no memory for is refused by the viewer
before the forward pass; the table then shows the refusal and the memory it
named. ``--quick`` runs 100k points only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def _scan(n: int) -> torch.Tensor:
    """A synthetic scan of exactly ``n`` points, [n, 3] metres."""
    from .common import lidar_scan

    beams = 64
    pts = lidar_scan(beams, max(64, math.ceil(n / beams * 1.25)))
    g = torch.Generator().manual_seed(0)
    if pts.size(0) >= n:
        return pts[torch.randperm(pts.size(0), generator=g)[:n]].contiguous()
    reps = math.ceil(n / pts.size(0))  # jittered copies, no duplicate points
    more = pts.repeat(reps, 1) + 0.01 * torch.randn(reps * pts.size(0), 3, generator=g)
    return more[:n].contiguous()


def _child(n: int, attention: str, max_points: int | None, out: str) -> None:
    from torch_geometric.data import Data

    from pointsam.models import create_model
    from pointsam.viz.html import to_html

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    pos = _scan(n)
    torch.manual_seed(0)
    model = create_model("pointnet2_lite_semseg", num_classes=19,
                         attention=attention).eval()
    kwargs = {} if max_points is None else {"max_points": max_points or None}
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    res: dict[str, object] = {"n": n}
    try:
        path = to_html(model, Data(pos=pos), out, **kwargs)
        res["page_mb"] = Path(path).stat().st_size / 2**20
    except (ValueError, MemoryError) as e:
        res["refused"] = str(e)
    res["seconds"] = time.perf_counter() - t
    res["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
    res["base_gib"] = base / 2**30
    print("RESULT " + json.dumps(res), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+",
                   default=[100_000, 1_000_000, 10_000_000])
    p.add_argument("--attention", default="local_global")
    p.add_argument("--max-points", type=int, default=None,
                   help="display budget (default: the viewer's; 0: every point)")
    p.add_argument("--quick", action="store_true", help="100k points only")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        _child(args.child, args.attention, args.max_points, args.out)
        return
    sizes = [100_000] if args.quick else args.sizes
    from pointsam.viz.scene import DEFAULT_MAX_POINTS

    budget = DEFAULT_MAX_POINTS if args.max_points is None else args.max_points
    print(f"pointnet2_lite_semseg attention={args.attention}, display budget "
          f"{budget or 'every point'}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}\n")
    print("| points | to_html time | peak RSS (process) | page |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            cmd = [sys.executable, "-m", "bench.viewer_memory", "--child", str(n),
                   "--attention", args.attention, "--out", f"{tmp}/v{n}.html"]
            if args.max_points is not None:
                cmd += ["--max-points", str(args.max_points)]
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  cwd=Path(__file__).resolve().parents[1])
            line = next((ln for ln in proc.stdout.splitlines()
                         if ln.startswith("RESULT ")), None)
            if line is None:
                tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
                print(f"| {n:,} | failed (exit {proc.returncode}): {tail} | | |",
                      flush=True)
                continue
            r = json.loads(line[7:])
            page = (f"{r['page_mb']:.1f} MB" if "page_mb" in r
                    else f"refused: {r['refused']}")
            print(f"| {n:,} | {r['seconds']:.1f} s | {r['peak_gib']:.2f} GiB | "
                  f"{page} |", flush=True)


if __name__ == "__main__":
    main()
