"""Test-time augmentation of LiDAR sweep runs (issue 23: "TTA if it pays").

    python train/lidar_votes.py SWEEP_DIR [SWEEP_DIR ...] [--votes 1 4 8]

Runs ``pointsam eval RUN/best.pt --votes V --json RUN/eval_votesV.json``
for every finished run of each sweep (whole scans: vote v turns the scan by
2 pi v / V about z, mirrored on odd votes; the probabilities are averaged) and
prints, per config, the one mIoU over seeds for each V and the paired
difference to V = 1. These are test-frame numbers: no vote count is chosen
from them for a table of the grid (the grid tables stay V = 1).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from pointsam.cli import main as pointsam


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sweeps", nargs="+", type=Path)
    p.add_argument("--votes", nargs="+", type=int, default=[1, 4, 8])
    a = p.parse_args(argv)
    for sweep in a.sweeps:
        res: dict[str, dict[int, list[float]]] = {}
        for summ in sorted(sweep.glob("runs/*/seed*/summary.json")):
            run = summ.parent
            for v in a.votes:
                out = run / f"eval_votes{v}.json"
                if not out.is_file():
                    assert pointsam(["eval", str(run / "best.pt"), "--votes", str(v),
                                     "--json", str(out)]) == 0
                miou = json.loads(out.read_text())["miou"]
                res.setdefault(run.parent.name, {}).setdefault(v, []).append(miou)
        print(f"\n{sweep}: test mIoU % (mean +- std over seeds; paired difference "
              f"to 1 vote)\n")
        print("| config | seeds | " + " | ".join(f"{v} vote(s)" for v in a.votes)
              + " |")
        print("|---|---:|" + "---:|" * len(a.votes))
        for cfg, by in res.items():
            base = np.array(by[a.votes[0]]) * 100
            cells = []
            for v in a.votes:
                x = np.array(by[v]) * 100
                cell = f"{x.mean():.1f} ± {x.std(ddof=1) if len(x) > 1 else 0:.1f}"
                if v != a.votes[0]:
                    d = x - base
                    cell += f" ({d.mean():+.1f}: " + ", ".join(f"{e:+.1f}" for e in d) + ")"
                cells.append(cell)
            print(f"| {cfg} | {len(base)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
