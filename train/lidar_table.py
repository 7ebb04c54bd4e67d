"""Print the real-frame LiDAR table (markdown) from finished runs.

Usage: python train/lidar_table.py [RUN_DIR ...]
       (default: runs/lidar_{plain,local_global,axial,plain_long})
Each RUN_DIR holds the metrics.json written by train/lidar.py.
"""

import json
import sys
from pathlib import Path

from pointsam.engine.lidar import format_table

LABELS = {"lidar_plain": "plain", "lidar_local_global": "+ local_global",
          "lidar_axial": "+ axial", "lidar_plain_long": "plain, 1000 steps"}


def main(argv):
    runs = argv or ["runs/lidar_plain", "runs/lidar_local_global", "runs/lidar_axial",
                    "runs/lidar_plain_long"]
    results = []
    for r in runs:
        p = Path(r) / "metrics.json"
        if not p.is_file():
            print(f"(missing {p}: run train/lidar.py on its config first)")
            continue
        m = json.loads(p.read_text())
        m["label"] = LABELS.get(Path(r).name, Path(r).name)
        results.append(m)
    print(format_table(results))
    if results:
        never = ", ".join(results[0]["never_in_training"]) or "none"
        print(f"\nClasses never in training (no real or synthetic point): {never}.")


if __name__ == "__main__":
    main(sys.argv[1:])
