"""Whole-scan LiDAR inference speed, today's code against a baseline (issue 11, s. 5).

Usage:
    PYTHONPATH=. python -m bench.lidar [--baseline REV | --baseline none]
        [--repeat 3] [--rounds 2] [--threads 1 2] [--quick]

Two workloads, on the real 123,266-point KITTI scan and the real 86,139-point
SemanticKITTI frame 000750:

- ``lidarseg``: the shipped model (``--model``, default
  ``pointnet2_lite_lidarseg_kitti``) through ``predict_scan`` with the voxel size
  and chunk size of its card (0.1 m voxels, chunks of 8,192 voxels);
- ``semseg``: ``pointnet2_lite_semseg`` randomly initialised (seed 0, eval mode;
  the parent writes the weights once and both code versions load them), the
  whole raw scan in one forward pass, as issue 11 measured it.

Each (workload, scan, thread count) runs in fresh subprocesses, once with the
code of this tree and once with the code of ``--baseline`` (default: the main
commit this branch started from), checked out into a temporary ``git worktree``
that is removed afterwards. The same child script runs on both, with
``PYTHONPATH`` pointing at the tree under test; runs alternate baseline,
current, current, baseline, ... (``--rounds``), so load from other processes
falls on both alike. Printed per row: median seconds of both, their ratio,
points per second and the peak extra memory (RSS high-water mark of the
subprocess above what it held before the first call) of the current code, and
the fraction of the scan's labels (argmax) on which the two versions agree.

Then a breakdown of the current code (and of the baseline, for comparison) on
the KITTI scan at each thread count: exclusive wall seconds of voxel grid,
chunking, sampling (FPS), neighbour search (kNN), interpolation (3-NN search
and weights of the feature propagations), the ground-height feature, the
network (gathers, MLPs, pooling, interpolation sums, head) and the rest, found
by wrapping those functions; plus the torch profiler's top operators.

The machine may be shared: every table says "under load" with the load
average; the ratio of interleaved runs is the robust number.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()
SCANS = {
    "kitti_004139": DATA / "kitti_object_sample/training/velodyne/004139.bin",
    "semantickitti_000750": DATA / "open3d_ml_demo_data/examples/demo_data/points/"
    "000750.npy",
}
#: main at the start of the speed work (issue 11, section 5): "today's code"
BASELINE = "f6eae32"

# One child per measurement, run with PYTHONPATH at the tree under test. Args:
# a JSON dict {kind, model, weights, scan, threads, repeat, labels, profile}.
_CHILD = r"""
import json, resource, statistics, sys, time
import numpy as np, torch
a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
import pointsam
assert pointsam.__file__.startswith(a["tree"]), (pointsam.__file__, a["tree"])
from pointsam.data import read_cloud
d = read_cloud(a["scan"])
if a["kind"] == "lidarseg":
    from pointsam.engine.inference import predict_scan
    from pointsam.models.pretrained import load_pretrained
    m = load_pretrained(a["model"]); cfg = m.pretrained["config"]["train"]
    def run():
        return predict_scan(m, d, voxel_size=cfg["voxel_size"],
                            chunk_points=cfg["chunk_points"])
else:
    from pointsam.models import create_model
    m = create_model("pointnet2_lite_semseg")
    m.load_state_dict(torch.load(a["weights"], weights_only=True)); m.eval()
    pos = d.pos.float()
    def run():
        with torch.no_grad():
            return m(pos=pos)
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = run()  # warm-up (also the labels)
if a["labels"]:
    np.save(a["labels"], out.argmax(1).numpy().astype(np.int16))
if a["profile"]:
    import pointsam.models.lidar as lidar_mod
    import pointsam.engine.inference as inf_mod
    from pointsam import ops
    from pointsam.models.pointnet2 import PointNet2
    from pointsam.models.pointnet2_layers import FeaturePropagation
    spent, stack = {}, []
    def wrap(owner, name, label, absorb=False):
        fn = getattr(owner, name)
        def w(*args, **kw):
            if stack and stack[-1][2]:  # inside an absorbing phase: count there
                return fn(*args, **kw)
            stack.append([time.perf_counter(), 0.0, absorb])
            try:
                return fn(*args, **kw)
            finally:
                t0, child, _ = stack.pop()
                dt = time.perf_counter() - t0
                spent[label] = spent.get(label, 0.0) + dt - child
                if stack:
                    stack[-1][1] += dt
        setattr(owner, name, w)
    wrap(ops, "grid_subsample", "voxel grid")
    wrap(inf_mod, "chunk_assignment", "chunking (excl. its FPS, kNN)")
    wrap(ops, "fps", "sampling (FPS)")
    wrap(ops, "knn", "neighbour search (kNN)")
    wrap(ops, "radius", "neighbour search (kNN)")
    wrap(FeaturePropagation, "plan", "interpolation (3-NN + weights)", absorb=True)
    wrap(lidar_mod, "height_above_ground", "ground-height feature")
    wrap(PointNet2, "network", "network (MLPs, gathers, pooling, interp.)")
    if a["kind"] == "lidarseg":
        wrap(type(m.net.head), "forward", "network (MLPs, gathers, pooling, interp.)")
    else:
        wrap(type(m.head), "forward", "network (MLPs, gathers, pooling, interp.)")
    run()
    tot = []
    phases = []
    for _ in range(a["repeat"]):
        spent.clear()
        t = time.perf_counter(); run(); tot.append(time.perf_counter() - t)
        phases.append(dict(spent))
    i = tot.index(statistics.median(tot)) if len(tot) % 2 else tot.index(min(tot))
    res = {"total": tot[i], "phases": phases[i]}
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as pr:
        run()
    top = sorted(pr.key_averages(), key=lambda e: -e.self_cpu_time_total)[:8]
    res["top_ops"] = [[e.key, e.self_cpu_time_total / 1e6, e.count] for e in top]
    print(json.dumps(res))
    sys.exit(0)
ts = []
for _ in range(a["repeat"]):
    t = time.perf_counter(); run(); ts.append(time.perf_counter() - t)
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": d.pos.size(0), "times": ts, "peak_extra_mb": (rss1 - rss0) / 1024}))
"""


def _child(tree: Path, args: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "2",
           "PYTHONDONTWRITEBYTECODE": "1"}
    args = {**args, "tree": str(tree)}
    r = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)],
                       capture_output=True, text=True, env=env, cwd=tree)
    if r.returncode != 0:
        raise RuntimeError(f"child failed in {tree} ({args['kind']}, "
                           f"{Path(args['scan']).name}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


class _Baseline:
    """``git worktree add --detach`` of ``rev`` in a temporary folder; removed on exit."""

    def __init__(self, rev: str) -> None:
        self.rev = rev
        self.tmp = Path(tempfile.mkdtemp(prefix="pointsam-baseline-"))
        self.tree = self.tmp / "tree"

    def __enter__(self) -> Path:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach",
                        "--quiet", str(self.tree), self.rev], check=True)
        return self.tree

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                        str(self.tree)], check=False)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _rev(rev: str) -> str:
    r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def _print_breakdown(title: str, res: dict) -> None:
    total = res["total"]
    ph = res["phases"]
    ph["rest (predict_scan glue, batching, softmax)"] = total - sum(ph.values())
    print(f"\n{title} (total {total:.3f} s):")
    for k, s in ph.items():
        print(f"- {k}: {s:.3f} s ({100 * s / total:.0f}%)")
    ops = ", ".join(f"{k} {s:.3f} s ({c})" for k, s, c in res["top_ops"])
    print(f"- top operators by self time under the profiler (calls): {ops}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="pointnet2_lite_lidarseg_kitti")
    ap.add_argument("--baseline", default=BASELINE,
                    help="git revision to compare with ('none': current code only)")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls per child")
    ap.add_argument("--rounds", type=int, default=2,
                    help="children per code version and row (alternating)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workloads", nargs="+", default=["lidarseg", "semseg"],
                    choices=["lidarseg", "semseg"])
    ap.add_argument("--quick", action="store_true",
                    help="1 repeat, 1 round, no breakdown")
    a = ap.parse_args(argv)
    # a TERM (timeout, kill) unwinds like Ctrl-C, so the baseline worktree is removed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if a.quick:
        a.repeat, a.rounds = 1, 1
    import torch

    from pointsam.models import create_model

    scans = {k: p for k, p in SCANS.items() if p.is_file()}
    for k in SCANS.keys() - scans.keys():
        print(f"# missing scan {k}: {SCANS[k]}")
    use_base = a.baseline.lower() != "none"
    work = Path(tempfile.mkdtemp(prefix="pointsam-bench-lidar-"))
    try:
        weights = work / "semseg_seed0.pt"
        torch.manual_seed(0)
        torch.save(create_model("pointnet2_lite_semseg").state_dict(), weights)
        base_cm = _Baseline(a.baseline) if use_base else None
        base_tree = base_cm.__enter__() if base_cm else None
        try:
            head = _rev("HEAD")
            dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                    "--untracked-files=no"], capture_output=True,
                                   text=True).stdout.strip()
            load = os.getloadavg()[0]
            print(f"# bench.lidar: current = {head}{' + uncommitted changes' if dirty else ''}"
                  f", baseline = {_rev(a.baseline) if use_base else 'none'}; under load "
                  f"(load average {load:.1f} on {os.cpu_count()} cores); median of "
                  f"{a.repeat} calls x {a.rounds} alternating subprocesses per version")
            print("# lidarseg: the shipped model " + a.model + " via predict_scan; "
                  "semseg: pointnet2_lite_semseg (seed 0) on the raw scan, one forward")
            print("| workload | scan | points | threads | baseline s | current s | "
                  "speed-up | points/s | peak extra MB (base / cur) | labels equal |")
            print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
            for kind in a.workloads:
                for name, path in scans.items():
                    for th in a.threads:
                        trees = [("cur", ROOT)] + ([("base", base_tree)] if use_base
                                                   else [])
                        times: dict[str, list[float]] = {t: [] for t, _ in trees}
                        mem: dict[str, list[float]] = {t: [] for t, _ in trees}
                        n = 0
                        order = []
                        for r in range(a.rounds):  # base, cur, cur, base, ...
                            order += trees[::-1] if r % 2 == 0 else trees
                        for tag, tree in order:
                            lab = work / f"{kind}_{name}_{tag}.npy"
                            res = _child(tree, {
                                "kind": kind, "model": a.model, "weights": str(weights),
                                "scan": str(path), "threads": th, "repeat": a.repeat,
                                "labels": "" if lab.exists() else str(lab),
                                "profile": False})
                            times[tag] += res["times"]
                            mem[tag].append(res["peak_extra_mb"])
                            n = res["n"]
                        cur = statistics.median(times["cur"])
                        mc = max(mem["cur"])
                        if use_base:
                            import numpy as np

                            base = statistics.median(times["base"])
                            la = np.load(work / f"{kind}_{name}_base.npy")
                            lb = np.load(work / f"{kind}_{name}_cur.npy")
                            eq = float((la == lb).mean())
                            cells = (f"{base:.3f} | {cur:.3f} | {base / cur:.2f}x | "
                                     f"{n / cur:,.0f} | {max(mem['base']):.0f} / "
                                     f"{mc:.0f} | {100 * eq:.3f}% "
                                     f"({int((la != lb).sum())} differ)")
                        else:
                            cells = (f" | {cur:.3f} | | {n / cur:,.0f} | {mc:.0f} | ")
                        print(f"| {kind} | {name} | {n} | {th} | {cells} |", flush=True)
            if not a.quick and "kitti_004139" in scans:
                for kind in a.workloads:
                    for th in a.threads:
                        for tag, tree in [("current", ROOT)] + (
                                [("baseline", base_tree)] if use_base else []):
                            res = _child(tree, {
                                "kind": kind, "model": a.model,
                                "weights": str(weights),
                                "scan": str(scans["kitti_004139"]), "threads": th,
                                "repeat": a.repeat, "labels": "", "profile": True})
                            _print_breakdown(f"Breakdown, {kind}, kitti_004139, {tag} "
                                             f"code, {th} thread(s), under load", res)
        finally:
            if base_cm:
                base_cm.__exit__(None, None, None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
