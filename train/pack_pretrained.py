"""Pack a finished training run into the model zoo: pointsam/pretrained/NAME.pt + card.

Usage:
  python train/pack_pretrained.py RUN_DIR NAME "pointsam train train/lidar/X.yaml"

A thin wrapper of :func:`pointsam.engine.pretrained.pack_run` (the library writes
the packed file and its card from the run's best.pt and summary.json).
"""

import sys

from pointsam.engine.pretrained import pack_run

if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    path = pack_run(sys.argv[1], sys.argv[2], command=" ".join(sys.argv[3:4]))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and "
          f"{path.with_suffix('.md')}")
