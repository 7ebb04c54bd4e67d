"""``pointsam train CONFIG [--set key=value ...] [--resume | --overwrite]`` (also
under torchrun).

The run directory (``train.out_dir``) must be writable; it is locked for the
run (a second run into it is refused, naming the process that holds it), and a
new run into a folder that holds a previous run is refused unless ``--resume``
or ``--overwrite`` (see :mod:`pointsam.engine.rundir`).

A LiDAR recipe config (``train/lidar/plain.yaml`` and its siblings: a config
with ``data.frames`` or ``train.steps``) runs the real-frame recipe,
:func:`pointsam.engine.lidar.run_lidar`, with the same ``--set``, lock and
``--overwrite`` and ``--resume`` (a finished run of the same config is returned
as it is; an unfinished one continues from the ``last.pt`` of its last held-out
evaluation).

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

__all__ = ["add_parser", "run", "run_recipe", "print_summary"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` sub-command to an ``argparse`` sub-parser set."""
    t = subparsers.add_parser("train", help="train from a YAML config in train/")
    t.add_argument("config", help="YAML config (see train/; train/lidar/plain.yaml "
                   "and its siblings run the real-frame LiDAR recipe)")
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
    from pointsam.engine.lidar import is_lidar_recipe_file

    if is_lidar_recipe_file(args.config):
        return run_recipe(args)
    cfg = load_config(args.config, args.overrides)
    try:
        trainer = Trainer(cfg, resume=args.resume, overwrite=args.overwrite)
        if trainer.info.is_main:
            print(f"[pointsam] {cfg.model.name} on {cfg.data.name}, "
                  f"{cfg.train.epochs} epochs -> {cfg.train.out_dir}",
                  file=sys.stderr, flush=True)
        summary = trainer.fit()
    finally:
        cleanup_distributed()
    if trainer.info.is_main:
        print_summary(summary, Path(cfg.train.out_dir))
    return 0


def run_recipe(args: argparse.Namespace) -> int:
    """Run a LiDAR recipe config; print its per-class table and where it wrote."""
    import os
    from datetime import datetime, timezone

    from pointsam.engine.lidar import format_table, load_lidar_config, run_lidar

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError(f"{args.config} is a LiDAR recipe config: it trains in one "
                         "process; run it without torchrun")
    cfg = load_lidar_config(args.config, args.overrides)

    def log(msg: str) -> None:
        now = datetime.now(timezone.utc).strftime("%H:%M:%S")
        print(f"[{now}] {msg}", file=sys.stderr, flush=True)

    print(f"[pointsam] LiDAR recipe: {cfg['model']['name']} "
          f"{cfg['model'].get('args') or {}}, {cfg['train']['steps']} steps -> "
          f"{cfg['train']['out_dir']}", file=sys.stderr, flush=True)
    summary = run_lidar(cfg, resume=args.resume, overwrite=args.overwrite, log=log)
    out = Path(cfg["train"]["out_dir"])
    metrics = out / "metrics.json"
    if metrics.is_file():
        import json

        m = json.loads(metrics.read_text())
        m["label"] = str(args.config)
        print(format_table([m]))
    b, t = summary["best"], summary["test"]
    print(f"best validation (held-out region): step {b['step']}, mIoU {b['miou']:.4f}")
    print(f"test ({t['split']}, evaluated once): miou={t['miou']:.4f} oa={t['oa']:.4f}")
    print(f"outputs in {out}: best.pt, log.csv, metrics.json, summary.json")
    return 0


def print_summary(summary: dict[str, Any], out: Path) -> None:
    """The three lines a finished run prints."""
    print(f"best validation: {fmt(summary['best'])}")
    print(f"test ({summary['test']['split']}, evaluated once): {fmt(summary['test'])}")
    print(f"outputs in {out}: best.pt, last.pt, metrics.csv, summary.json, tb/")
