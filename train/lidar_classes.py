"""Per-class IoU of LiDAR sweep runs on their test frame (issue 23).

    python train/lidar_classes.py SWEEP_DIR [SWEEP_DIR ...] [--min-points 100]

Reads each run's ``summary.json`` (the one metric's per-class IoU and the
confusion matrix of ``pointsam.engine.metrics.SemSegMetrics``) and prints, per
config, the mean over seeds of each class's IoU for the classes with at least
``--min-points`` points in the test frame's truth, then their mean. The
headline mIoU stays the one metric (every class present in the truth or the
prediction); this table shows where it comes from: a single frame holds classes
of 3-60 points (bicycle, trunk, traffic-sign) that weigh as much as vegetation.
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweeps", nargs="+", type=Path)
    p.add_argument("--min-points", type=int, default=100)
    a = p.parse_args(argv)
    for sweep in a.sweeps:
        runs = sorted(sweep.glob("runs/*/seed*/summary.json"))
        if not runs:
            raise SystemExit(f"{sweep}: no runs/*/seed*/summary.json")
        per = defaultdict(list)
        names, support = None, None
        for f in runs:
            s = json.loads(f.read_text())
            cm = np.asarray(s["test"]["confusion"], dtype=np.int64)  # [truth, pred]
            sup = cm.sum(1)
            if support is None:
                support = sup
            elif not np.array_equal(support, sup):
                raise SystemExit(f"{f}: another test frame than the other runs")
            names = s.get("class_names") or names
            iou = [np.nan if v is None else v for v in s["test"]["iou"]]
            per[f.parent.parent.name].append((np.asarray(iou, float),
                                               float(s["test"]["miou"])))
        if names is None:
            from pointsam.data.kitti import class_names
            names = class_names()
        keep = [i for i in range(len(support)) if support[i] >= a.min_points]
        print(f"\n{sweep} (test frame: {int(support.sum())} labelled points; classes "
              f"with >= {a.min_points} points)\n")
        print("| config | seeds | " + " | ".join(f"{names[i]} ({support[i]})"
                                                  for i in keep)
              + f" | mean of these {len(keep)} | mIoU (every class) |")
        print("|---|---:|" + "---:|" * (len(keep) + 2))
        for cfg, rows in per.items():
            iou = np.stack([r[0] for r in rows])  # [seeds, classes]
            m = 100 * np.nanmean(iou[:, keep], axis=0)
            sub = 100 * np.nanmean(iou[:, keep], axis=1)  # per seed
            print(f"| {cfg} | {len(rows)} | " + " | ".join(f"{v:.1f}" for v in m)
                  + f" | {sub.mean():.1f} | "
                  f"{100 * np.mean([r[1] for r in rows]):.1f} |")


if __name__ == "__main__":
    main()
