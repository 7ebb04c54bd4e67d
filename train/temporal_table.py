"""Print the temporal vs single-scan table (markdown) from finished runs.

Usage: python train/temporal_table.py RUN_DIR [RUN_DIR ...]
       (default: runs/temporal_coarse runs/temporal_single)
Each RUN_DIR holds the summary.json that ``pointsam train`` (or ``pointsam
sweep``) wrote for train/lidar/temporal_coarse.yaml, temporal_full.yaml or
temporal_single.yaml. Scores are on the held-out
test split, newest scan's points only: per-class IoU, mIoU, OA, and two numbers
read from the confusion matrix: ``car (any)``, the IoU of car and moving car
merged (is it a car at all?), ``moving car -> car``, the share of moving-car
points labelled as parked cars, and ``car -> moving car``, the share of parked-car
points labelled as moving (a single scan cannot tell the two apart).
"""

import json
import sys
from pathlib import Path

CLASSES = ("ground", "road", "sidewalk", "building", "car", "pole", "vegetation",
           "person", "moving car", "moving person")


def _merged_iou(cm, ids):
    tp = sum(cm[i][j] for i in ids for j in ids)
    row = sum(sum(cm[i]) for i in ids)
    col = sum(cm[j][i] for i in ids for j in range(len(cm)))
    return tp / (row + col - tp) if row + col - tp else float("nan")


def _name(args):
    if not args.get("num_past", 2):
        return "single scan"
    return f"T={args.get('num_past', 2)} temporal, {args.get('placement', 'coarse')}"


def row(summary):
    t = summary["test"]
    cm = t["confusion"]
    mov, static = sum(cm[8]), sum(cm[4])
    return {
        "model": _name(summary["config"]["model"]["args"]),
        "seed": summary["seed"],
        "params": summary["num_parameters"],
        "iou": t["iou"],
        "miou": t["miou"],
        "oa": t["oa"],
        "car_any": _merged_iou(cm, (4, 8)),
        "mov_as_car": cm[8][4] / mov if mov else float("nan"),
        "car_as_mov": cm[4][8] / static if static else float("nan"),
        "epochs": summary["epochs_run"],
        "time": summary["train_time_s"],
    }


def main(argv):
    runs = argv or ["runs/temporal_coarse", "runs/temporal_single"]
    rows = []
    for r in runs:
        p = Path(r) / "summary.json"
        if not p.is_file():
            print(f"(missing {p}: train its config first)")
            continue
        rows.append(row(json.loads(p.read_text())))
    head = (["model", "seed", "params"] + list(CLASSES)
            + ["mIoU", "OA", "car (any)", "moving car -> car", "car -> moving car",
               "train s"])
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for r in rows:
        cells = [r["model"], str(r["seed"]), f"{r['params']:,}"]
        cells += [f"{100 * v:.1f}" for v in r["iou"]]
        cells += [f"{100 * r['miou']:.1f}", f"{100 * r['oa']:.1f}",
                  f"{100 * r['car_any']:.1f}", f"{100 * r['mov_as_car']:.1f}%",
                  f"{100 * r['car_as_mov']:.1f}%",
                  f"{r['time']:.0f}"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
