"""``pointsam sweep CONFIG ... --seeds 0 1 2 --out DIR``: configs x seeds, tabulated.

The orchestration and the report live in :mod:`pointsam.engine.sweep` and
:mod:`pointsam.engine.sweep_report`; this module is the command's parser.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sweep`` to an ``argparse`` sub-parser set; returns the parser."""
    s = subparsers.add_parser(
        "sweep", help="train configs x seeds in parallel, tabulate mean/std/paired",
        description="Train every CONFIG with every seed (one process and one "
        "thread each, resumable), then write DIR/results.md, results.csv, "
        "results_seeds.csv and results.png.")
    s.add_argument("configs", nargs="*", metavar="CONFIG",
                   help="YAML configs (see train/ and train/lidar/); the first "
                   "is the baseline")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="train.seed values (default: 0 1 2)")
    s.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a value in every config")
    s.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="runs at once (default: the number of cores)")
    s.add_argument("--baseline", default=None,
                   help="config (path or stem) the others are compared with "
                   "(default: the first)")
    s.add_argument("--out", required=True, help="sweep folder DIR")
    s.add_argument("--report-only", action="store_true",
                   help="only re-aggregate the finished runs in DIR")
    s.add_argument("--dry-run", action="store_true",
                   help="check everything and print the commands; run nothing")
    s.set_defaults(func=run)
    return s


def run(args: argparse.Namespace) -> int:
    """Run the sweep (or only its report); 0 when every run finished."""
    from pointsam.engine.sweep import cmd_sweep

    return cmd_sweep(args)
