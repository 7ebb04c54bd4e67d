"""Train one LiDAR config (train/lidar/*.yaml) and print its metrics.

Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python train/lidar.py train/lidar/plain.yaml
       [--set train.steps=10 ...]
Writes best.pt, log.csv, metrics.json and summary.json into train.out_dir (runs/
is git-ignored), replacing a previous run there. The same run as
`pointsam train train/lidar/plain.yaml --overwrite [--set ...]`, which this
script wraps (pointsam.engine.lidar.run_lidar); `pointsam sweep` runs these
configs over seeds.
"""

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from pointsam.engine.lidar import format_table, load_lidar_config, run_lidar


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    a = p.parse_args(argv)
    cfg = load_lidar_config(a.config, a.set)

    def log(msg):
        now = datetime.now(timezone.utc).strftime("%H:%M:%S")
        print(f"[{now}] {msg}", flush=True)

    run_lidar(cfg, overwrite=True, log=log)
    metrics = json.loads((Path(cfg["train"]["out_dir"]) / "metrics.json").read_text())
    metrics["label"] = a.config
    print(format_table([metrics]))


if __name__ == "__main__":
    sys.exit(main())
