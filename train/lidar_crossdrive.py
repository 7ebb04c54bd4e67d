"""The cross-drive check of LiDAR runs or shipped models (issue 23, section 2).

    python train/lidar_crossdrive.py RUN_DIR [RUN_DIR ...] [--model NAME ...] [--votes V]
    python train/lidar_crossdrive.py --summarize SWEEP_DIR [--votes 1 8]

For each run (its best.pt) or shipped model: car, person and cyclist IoU
against box-derived truth on the KITTI object scan 004139 and four KITTI raw
frames of drive 2011_09_26_0001 (SqueezeSeg), drives the SemanticKITTI frames
never saw (pointsam.engine.crossdrive). Prints a table and, for a run, writes
RUN_DIR/crossdrive.json (crossdrive_votesV.json with --votes V > 1: the
scans turned about z V times, probabilities averaged).

``--summarize SWEEP_DIR`` reads those files of every run of a sweep (checking
the ones missing first) and prints, per config, the mean over seeds of each
class's IoU on each drive (the classes with >= 100 box-derived points
there), the seeds in brackets, for each vote count given.
"""

import argparse
import json
import math
from pathlib import Path

import torch

from pointsam.engine.crossdrive import (
    CROSS_DRIVE_CLASSES,
    cross_drive_check,
    cross_drive_scans,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", type=Path)
    p.add_argument("--model", action="append", default=[])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--votes", type=int, nargs="+", default=[1])
    p.add_argument("--summarize", type=Path, default=None, metavar="SWEEP_DIR")
    args = p.parse_args(argv)
    if args.summarize is not None:
        return summarize(args.summarize, args.votes, args.data)
    if len(args.votes) != 1:
        p.error("--votes takes one count when checking runs or models")
    args.votes = args.votes[0]
    torch.set_num_threads(1)
    scans = cross_drive_scans(args.data)
    rows = []
    for name in args.model:
        from pointsam.engine.pretrained import load_pretrained_trained

        model, _, cfg, _ = load_pretrained_trained(name)
        rows.append((name, cfg, model, None))
    for run in args.runs:
        from pointsam.engine.predict import load_trained

        model, _, cfg, _ = load_trained(run / "best.pt")
        rows.append((str(run), cfg, model, run))
    cols = [(s, c) for s in scans for c in CROSS_DRIVE_CLASSES]
    print("| model | " + " | ".join(f"{s} {c} IoU %" for s, c in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for label, cfg, model, run in rows:
        r = cross_drive_check(model, scans, voxel_size=cfg.train.voxel_size,
                              chunk_points=cfg.train.chunk_points, votes=args.votes)
        cells = []
        for s, c in cols:
            v = r[s][c]["iou"]
            cells.append("-" if math.isnan(v) else f"{100 * v:.1f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
        if run is not None:
            name = ("crossdrive.json" if args.votes == 1
                    else f"crossdrive_votes{args.votes}.json")
            (run / name).write_text(json.dumps(r, indent=2) + "\n")


def _file(run: Path, votes: int) -> Path:
    return run / ("crossdrive.json" if votes == 1 else f"crossdrive_votes{votes}.json")


def summarize(sweep: Path, votes: list[int], data: Path) -> None:
    """Per config of ``sweep``: mean IoU over seeds per drive and class."""
    runs = sorted(r.parent for r in sweep.glob("runs/*/seed*/summary.json"))
    if not runs:
        raise SystemExit(f"no finished run under {sweep}/runs")
    for v in votes:
        todo = [r for r in runs if not _file(r, v).is_file()]
        if todo:
            main([*map(str, todo), "--votes", str(v), "--data", str(data)])
    by: dict[str, list[Path]] = {}
    for r in runs:
        by.setdefault(r.parent.name, []).append(r)
    first = json.loads(_file(runs[0], votes[0]).read_text())
    cols = [(s, c, v) for v in votes for s in first for c in CROSS_DRIVE_CLASSES
            if first[s][c]["truth"] >= 100]  # a class the drive's boxes hold
    print(f"\n{sweep}: IoU % against box-derived truth, mean over seeds (the seeds)\n")
    print("| config | " + " | ".join(f"{c}, {s}, {v} vote(s)" for s, c, v in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, rs in by.items():
        cells = []
        for s, c, v in cols:
            x = [100 * json.loads(_file(r, v).read_text())[s][c]["iou"] for r in rs]
            cells.append(f"{sum(x) / len(x):.1f} (" + ", ".join(f"{e:.1f}" for e in x)
                         + ")")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
