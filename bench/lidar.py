"""Whole-scan inference speed of the shipped LiDAR model (issue 11, section 5).

Usage: PYTHONPATH=. python -m bench.lidar [--model NAME] [--repeat 3] [--quick]

For the real 123,266-point KITTI scan and the real 86,139-point SemanticKITTI
frame 000750: seconds (median), points per second and peak extra memory (RSS
high-water mark of a fresh subprocess) at 1 and 2 torch threads, then a
breakdown at 1 thread (voxel grid, sampling, neighbour search, ground-height
feature, the network and the rest; and the torch profiler's top ops). The
machine is shared: every number printed is labelled "under load" with the load
average.
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

def profile(model_name: str, path: Path) -> dict[str, float]:
    """Seconds per phase of one whole-scan prediction (1 thread), plus top ops.

    Phases are timed by wrapping the functions the forward calls (looked up at
    call time, so the wrapper sees every call): ``ops.grid_subsample`` (voxels),
    ``ops.fps`` (sampling: chunk centres and PointNet++ centres), ``ops.knn``
    (neighbour search: chunking, grouping, interpolation), the ground-height
    feature; "network + rest" is what remains of the total.
    """
    import time

    import torch

    import pointsam.models.lidar as lidar_mod
    from pointsam import ops
    from pointsam.data import read_cloud
    from pointsam.engine.inference import predict_scan
    from pointsam.models.pretrained import load_pretrained

    torch.set_num_threads(1)
    m = load_pretrained(model_name)
    inf = m.pretrained["config"]["train"]
    d = read_cloud(path)

    def run():
        return predict_scan(m, d, voxel_size=inf["voxel_size"],
                            chunk_points=inf["chunk_points"])

    run()
    spent: dict[str, float] = {}
    patched = [(ops, "grid_subsample", "voxel grid (grid_subsample)"),
               (ops, "fps", "sampling (fps)"), (ops, "knn", "neighbour search (knn)"),
               (lidar_mod, "height_above_ground", "ground-height feature")]
    saved = []
    for mod, name, label in patched:
        fn = getattr(mod, name)
        saved.append((mod, name, fn))

        def wrap(*a, _fn=fn, _label=label, **k):
            t = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                spent[_label] = spent.get(_label, 0.0) + time.perf_counter() - t

        setattr(mod, name, wrap)
    try:
        t0 = time.perf_counter()
        run()
        total = time.perf_counter() - t0
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
    spent["network + rest"] = total - sum(spent.values())
    spent["total"] = total
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as pr:
        run()
    top = sorted(pr.key_averages(), key=lambda e: -e.self_cpu_time_total)[:6]
    spent.update({f"op {e.key} (self)": e.self_cpu_time_total / 1e6 for e in top})
    return spent


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
        total = prof.pop("total")
        print(f"\nBreakdown, kitti_004139, 1 thread (total {total:.2f} s; under load):")
        for fam, s in prof.items():
            print(f"- {fam}: {s:.3f} s ({100 * s / total:.0f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
