"""``pointsam train CONFIG [--set key=value ...] [--resume | --overwrite]`` (also
under torchrun).

The run directory (``train.out_dir``) must be writable; it is locked for the
run (a second run into it is refused, naming the process that holds it), and a
new run into a folder that holds a previous run is refused unless ``--resume``
or ``--overwrite`` (see :mod:`pointsam.engine.rundir`).

A config names its data (``data.name``, in the file or through ``--set``):
one without it is refused rather than trained on the default synthetic set.

Every run goes through the one trainer, LiDAR frames included
(``train/lidar/*.yaml``: ``data.name: lidar_frames``, ``train.steps``).

Like every command module: ``add_parser`` declares the arguments, ``run`` does the
work and imports the engine when it is called, so that ``pointsam --help`` and
argument errors answer at once (the engine's imports take about 2.5 s).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ._format import fmt

__all__ = ["add_parser", "run", "print_summary"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` sub-command to an ``argparse`` sub-parser set."""
    t = subparsers.add_parser("train", help="train from a YAML config in train/")
    t.add_argument("config", help="YAML config (see train/ and train/lidar/)")
    t.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value (repeatable)",
    )
    t.add_argument(
        "--resume", action="store_true",
        help="continue from OUT_DIR/last.pt (a finished run of the same config "
        "is kept as it is)"
    )
    t.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous run in OUT_DIR (without it, a new run into a "
        "folder holding best.pt/last.pt/metrics.csv is refused)",
    )
    t.set_defaults(func=run)
    return t


def run(args: argparse.Namespace) -> int:
    """Train, then print the best validation and the test results."""
    from pointsam.engine.config import load_config
    from pointsam.engine.distributed import cleanup_distributed
    from pointsam.engine.trainer import Trainer

    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in OUT_DIR and --overwrite "
                         "replaces it: give one of them")
    cfg = load_config(args.config, args.overrides)
    _check_names_data(args.config, args.overrides)
    try:
        trainer = Trainer(cfg, resume=args.resume, overwrite=args.overwrite)
        if trainer.info.is_main:
            length = (f"{cfg.train.steps} steps" if cfg.train.steps
                      else f"{cfg.train.epochs} epochs")
            print(f"[pointsam] {cfg.model.name} on {cfg.data.name}, "
                  f"{length} -> {cfg.train.out_dir}",
                  file=sys.stderr, flush=True)
        summary = trainer.fit()
    finally:
        cleanup_distributed()
    if trainer.info.is_main:
        print_summary(summary, Path(cfg.train.out_dir))
    return 0


def _check_names_data(path: str, overrides: list[str]) -> None:
    """Refuse a config that names no dataset (``data.name``) in the file or in
    ``--set``: its defaults would train on synthetic shapes into runs/default."""
    import yaml

    from pointsam.engine.builders import DATASETS
    from pointsam.engine.config import ConfigError

    d = yaml.safe_load(Path(path).read_text()) or {}  # load_config checked it
    data = d.get("data") if isinstance(d, dict) else None
    if (isinstance(data, dict) and data.get("name")) or any(
            o.split("=", 1)[0].strip() == "data.name" for o in overrides):
        return
    what = "no data section" if not isinstance(data, dict) else "no data.name"
    raise ConfigError(
        f"{path} has {what}: a config names the dataset it trains on, e.g. "
        "`data: {name: modelnet10, root: ...}` (known: "
        f"{', '.join(DATASETS)}; see train/*.yaml), or --set data.name=NAME; "
        "without it the defaults would train on synthetic_shapes into "
        "runs/default")


def print_summary(summary: dict[str, Any], out: Path) -> None:
    """The three lines a finished run prints."""
    print(f"best validation: {fmt(summary['best'])}")
    print(f"test ({summary['test']['split']}, evaluated once): {fmt(summary['test'])}")
    print(f"outputs in {out}: best.pt, last.pt, metrics.csv, summary.json, tb/")
