"""Pack a finished training run into the model zoo: pointsam/pretrained/NAME.pt + card.

Usage:
  python train/pack_pretrained.py RUN_DIR NAME "pointsam train train/lidar/X.yaml" \
      [--notes train/cards/NAME.md] [--crossdrive RUN_DIR/crossdrive_votes8.json] \
      [--metric KEY=VALUE ...] [--out DIR]

A thin wrapper of :func:`pointsam.engine.pretrained.pack_run` (the library writes
the packed file and its card from the run's best.pt and summary.json). ``--notes``
is the card's "Notes" section (markdown, kept in ``train/cards/`` so a card can be
written again); ``--crossdrive`` stores a LiDAR run's cross-drive check
(``train/lidar_crossdrive.py``) as metrics: ``car_iou_kitti_004139``,
``person_iou_kitti_004139`` and ``car_iou_drive_0001``.
"""

import argparse
import json
from pathlib import Path

from pointsam.engine.pretrained import pack_run

#: (source in the cross-drive file, class, metric name in the card)
CROSS_DRIVE_METRICS = [("kitti_004139", "car", "car_iou_kitti_004139"),
                       ("kitti_004139", "person", "person_iou_kitti_004139"),
                       ("squeezeseg_0001", "car", "car_iou_drive_0001")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path)
    p.add_argument("name")
    p.add_argument("command", nargs="?", default="")
    p.add_argument("--notes", type=Path, default=None)
    p.add_argument("--crossdrive", type=Path, default=None)
    p.add_argument("--metric", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, default=None,
                   help="folder to write into (default: the package's pretrained/)")
    a = p.parse_args(argv)
    metrics: dict[str, float] = {}
    if a.crossdrive is not None:
        r = json.loads(a.crossdrive.read_text())
        for source, cls, key in CROSS_DRIVE_METRICS:
            metrics[key] = round(float(r[source][cls]["iou"]), 4)
    for kv in a.metric:
        k, sep, v = kv.partition("=")
        if not sep:
            p.error(f"--metric {kv!r}: expected KEY=VALUE")
        metrics[k] = float(v)
    notes = a.notes.read_text() if a.notes is not None else ""
    path = pack_run(a.run, a.name, a.out, command=a.command, notes=notes,
                    metrics=metrics or None)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and "
          f"{path.with_suffix('.md')}")


if __name__ == "__main__":
    main()
