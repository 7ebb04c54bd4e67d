"""Does a trained temporal model use the earlier scans? Swap them and re-score.

Usage: python train/temporal_ablation.py RUN_DIR [RUN_DIR ...] [--samples N]

Loads each RUN_DIR/best.pt (a pointnet2_lite_temporal_lidarseg run of
train/lidar/temporal_coarse.yaml or temporal_full.yaml, e.g. the seeds of a
`pointsam sweep`) and scores the newest scan of the test split three ways: with the real earlier scans; with every earlier scan replaced by a
copy of the newest one (nothing moved: the past says "static everywhere"); and
with the earlier scans dropped from the moving objects only (their past points
removed, as if nothing had been there). Prints a markdown table: mIoU, the
moving car IoU, and the shares of moving-car points called moving and of
parked-car points called moving, each way, per run.
"""

import argparse

import torch
from torch_geometric.data import Batch

from pointsam.engine.builders import build_dataset
from pointsam.engine.metrics import SemSegMetrics
from pointsam.engine.predict import load_trained


def _static_past(d):
    cur = d.frame == 0
    out = d.clone()
    parts = {k: [d[k][cur]] for k in ("pos", "y", "frame", "moving")}
    for tau in range(1, int(d.frame.max()) + 1):
        parts["pos"].append(d.pos[cur])
        parts["y"].append(d.y[cur])
        parts["frame"].append(torch.full_like(d.frame[cur], tau))
        parts["moving"].append(d.moving[cur])
    for k, v in parts.items():
        out[k] = torch.cat(v)
    del out.x
    return out


def _no_moving_past(d):
    keep = (d.frame == 0) | ~d.moving
    out = d.clone()
    for k in ("pos", "y", "frame", "moving"):
        out[k] = d[k][keep]
    del out.x
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--samples", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    print("| run | past scans | mIoU | moving car IoU | moving cars called moving "
          "| parked cars called moving |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for run in a.runs:
        model, task, cfg, _ = load_trained(f"{run}/best.pt")
        ds = build_dataset(cfg, cfg.data.test_split)
        n = a.samples or len(ds)
        ways = {"real": lambda d: d, "swapped for static copies": _static_past,
                "moving objects' past removed": _no_moving_past}
        for name, f in ways.items():
            m = SemSegMetrics(task.num_classes, task.ignore_index)
            with torch.no_grad():
                for i in range(n):
                    d = f(ds[i])
                    if "x" in d:
                        del d.x
                    b = Batch.from_data_list([d])
                    task.update(m, model(b), b)
            r = m.compute()
            cm = m.confusion
            called = float(cm[8, 8] + cm[8, 9]) / max(1, int(cm[8].sum()))
            static = float(cm[4, 8]) / max(1, int(cm[4].sum()))
            print(f"| {run} | {name} | {100 * r['miou']:.1f} | "
                  f"{100 * r['iou'][8]:.1f} | {100 * called:.1f}% | "
                  f"{100 * static:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
