"""``pointsam train CONFIG [--set key=value ...] [--resume]`` (also under torchrun).

Like every command module: ``add_parser`` declares the arguments, ``run`` does the
work and imports the engine when it is called, so that ``pointsam --help`` and
argument errors answer at once (the engine's imports take about 2.5 s).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._format import fmt

__all__ = ["add_parser", "run", "print_summary"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` sub-command to an ``argparse`` sub-parser set."""
    t = subparsers.add_parser("train", help="train from a YAML config in train/")
    t.add_argument("config", help="YAML config (see train/)")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (repeatable)",
    )
    t.add_argument(
        "--resume", action="store_true", help="continue from OUT_DIR/last.pt"
    )
    t.set_defaults(func=run)
    return t


def run(args: argparse.Namespace) -> int:
    """Train, then print the best validation and the test results."""
    from pointsam.engine.config import load_config
    from pointsam.engine.distributed import cleanup_distributed
    from pointsam.engine.trainer import Trainer

    cfg = load_config(args.config, args.overrides)
    try:
        trainer = Trainer(cfg, resume=args.resume)
        summary = trainer.fit()
    finally:
        cleanup_distributed()
    if trainer.info.is_main:
        print_summary(summary, Path(cfg.train.out_dir))
    return 0


def print_summary(summary: dict[str, Any], out: Path) -> None:
    """The three lines a finished run prints."""
    print(f"best validation: {fmt(summary['best'])}")
    print(f"test ({summary['test']['split']}, evaluated once): {fmt(summary['test'])}")
    print(f"outputs in {out}: best.pt, last.pt, metrics.csv, summary.json, tb/")
