"""Train one LiDAR config (train/lidar/*.yaml) and print its metrics.

Usage: PYTHONPATH=. OMP_NUM_THREADS=1 python train/lidar.py train/lidar/plain.yaml
       [--set train.steps=10 ...]
Writes best.pt, log.csv and metrics.json into train.out_dir (runs/ is git-ignored).
"""

import argparse
import sys
from datetime import datetime, timezone

import yaml

from pointsam.engine.lidar import format_table, train_lidar


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    a = p.parse_args(argv)
    with open(a.config) as f:
        cfg = yaml.safe_load(f)
    for kv in a.set:
        key, _, value = kv.partition("=")
        sec, _, name = key.partition(".")
        cfg.setdefault(sec, {})[name] = yaml.safe_load(value)

    def log(msg):
        now = datetime.now(timezone.utc).strftime("%H:%M:%S")
        print(f"[{now}] {msg}", flush=True)

    metrics = train_lidar(cfg, log=log)
    metrics["label"] = a.config
    print(format_table([metrics]))


if __name__ == "__main__":
    sys.exit(main())
