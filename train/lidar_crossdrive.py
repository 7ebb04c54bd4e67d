"""The cross-drive check of LiDAR runs or shipped models (issue 23, section 2).

    python train/lidar_crossdrive.py RUN_DIR [RUN_DIR ...] [--model NAME ...] [--votes V]

For each run (its best.pt) or shipped model: car, person and cyclist IoU
against box-derived truth on the KITTI object scan 004139 and four KITTI raw
frames of drive 2011_09_26_0001 (SqueezeSeg), drives the SemanticKITTI frames
never saw (pointsam.engine.crossdrive). Prints a table and, for a run, writes
RUN_DIR/crossdrive.json (crossdrive_votesV.json with --votes V > 1: the
scans turned about z V times, probabilities averaged).
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
    p.add_argument("--votes", type=int, default=1)
    args = p.parse_args(argv)
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


if __name__ == "__main__":
    main()
