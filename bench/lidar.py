"""Whole-scan inference speed of the shipped LiDAR model (issue 11, section 5).

Usage: PYTHONPATH=. python -m bench.lidar [--model NAME] [--repeat 3] [--quick]

For the real 123,266-point KITTI scan and the real 86,139-point SemanticKITTI
frame 000750: seconds (median), points per second and peak extra memory (RSS
high-water mark of a fresh subprocess) at 1 and 2 torch threads, then a
profiler breakdown at 1 thread by op family (neighbour search, sampling,
interpolation, the network's matmuls and the rest). The machine is shared:
every number printed is labelled "under load" with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
SCANS = {
    "kitti_004139": DATA / "kitti_object_sample/training/velodyne/004139.bin",
    "semantickitti_000750": DATA / "open3d_ml_demo_data/examples/demo_data/points/"
    "000750.npy",
}

_CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(int(sys.argv[3]))
from pointsam.data import read_cloud
from pointsam.engine.inference import predict_scan
from pointsam.models.pretrained import load_pretrained
m = load_pretrained(sys.argv[1]); inf = m.pretrained["config"]["train"]
d = read_cloud(sys.argv[2])
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ts = []
for _ in range(int(sys.argv[4]) + 1):
    t = time.perf_counter()
    p = predict_scan(m, d, voxel_size=inf["voxel_size"], chunk_points=inf["chunk_points"])
    ts.append(time.perf_counter() - t)
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ts = sorted(ts[1:])
print(json.dumps({"n": d.pos.size(0), "s": ts[len(ts) // 2],
                  "peak_extra_mb": (rss1 - rss0) / 1024}))
"""

_FAMILIES = (
    ("neighbour search", ("knn", "cdist", "topk", "kdtree", "nns", "searchsorted")),
    ("sampling (FPS, voxels)", ("fps", "sampling", "grid", "unique", "argsort", "sort")),
    ("interpolation", ("interpolate", "scatter", "index_add", "segment")),
    ("network matmuls", ("addmm", "mm", "bmm", "linear", "matmul", "baddbmm")),
    ("gathers", ("index", "gather", "embedding")),
)


def _family(name: str) -> str:
    low = name.lower()
    for fam, keys in _FAMILIES:
        if any(k in low for k in keys):
            return fam
    return "other"


def profile(model_name: str, path: Path) -> dict[str, float]:
    """Self CPU seconds per op family for one whole-scan prediction (1 thread)."""
    import torch

    from pointsam.data import read_cloud
    from pointsam.engine.inference import predict_scan
    from pointsam.models.pretrained import load_pretrained

    torch.set_num_threads(1)
    m = load_pretrained(model_name)
    inf = m.pretrained["config"]["train"]
    d = read_cloud(path)
    predict_scan(m, d, voxel_size=inf["voxel_size"], chunk_points=inf["chunk_points"])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as pr:
        predict_scan(m, d, voxel_size=inf["voxel_size"],
                     chunk_points=inf["chunk_points"])
    out: dict[str, float] = {}
    for ev in pr.key_averages():
        fam = _family(ev.key)
        out[fam] = out.get(fam, 0.0) + ev.self_cpu_time_total / 1e6
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pointnet2_lite_lidarseg_kitti")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 repeat, no profile")
    a = ap.parse_args(argv)
    rep = 1 if a.quick else a.repeat
    load = os.getloadavg()[0]
    print(f"# bench.lidar: {a.model}, under load (load average {load:.1f} on "
          f"{os.cpu_count()} cores); median of {rep}")
    print("| scan | points | threads | seconds | points/s | peak extra MB |")
    print("|---|---:|---:|---:|---:|---:|")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}
    for name, path in SCANS.items():
        if not path.is_file():
            print(f"| {name} | missing {path} | | | | |")
            continue
        for th in (1, 2):
            r = subprocess.run([sys.executable, "-c", _CHILD, a.model, str(path),
                                str(th), str(rep)], capture_output=True, text=True,
                               env=env, check=True)
            res = json.loads(r.stdout.strip().splitlines()[-1])
            print(f"| {name} | {res['n']} | {th} | {res['s']:.2f} | "
                  f"{res['n'] / res['s']:,.0f} | {res['peak_extra_mb']:.0f} |")
    if not a.quick and SCANS["kitti_004139"].is_file():
        prof = profile(a.model, SCANS["kitti_004139"])
        total = sum(prof.values())
        print(f"\nProfiler, kitti_004139, 1 thread (self CPU s, total {total:.2f}; "
              "under load):")
        for fam, s in prof.items():
            print(f"- {fam}: {s:.2f} s ({100 * s / total:.0f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
