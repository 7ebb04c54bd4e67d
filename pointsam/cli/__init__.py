r"""The ``pointsam`` command: train, eval, predict, viz, demo, bench, sweep, models, export.

::

    pointsam demo [--epochs N] [--out runs/demo] [--quick]
    pointsam train CONFIG [--set key=value ...] [--resume | --overwrite]
    torchrun --nproc_per_node=2 -m pointsam train CONFIG      # DDP
    pointsam eval CHECKPOINT [--split test] [--votes N] [--set data.root=...]
    pointsam predict (CHECKPOINT | --model NAME | --onnx M.onnx | --pt2 M.pt2) FILE --out OUT.ply
    pointsam predict SOURCE DIR_OR_GLOB --out OUT_DIR [--overwrite] [--jobs N]
    pointsam viz (CHECKPOINT | --model NAME) SOURCE [--out DIR] [--html OUT.html]
    pointsam bench [NAME ...] [--list]              # runs python -m bench.NAME
    pointsam sweep CONFIG ... --seeds 0 1 2 --out DIR  # configs x seeds, tables
    pointsam models [NAME]                          # shipped trained models
    pointsam export CHECKPOINT --format onnx|pt2 --out FILE [--with-attention]

A user error (missing file, empty config, unknown config key, bad value, missing
dataset, malformed cloud file, unsafe or mismatched checkpoint, run directory in
use, not writable or holding a run, disk full, diverged training) prints one
``pointsam: error: ...`` line and exits with 2; ``POINTSAM_DEBUG=1`` shows the
traceback instead. A warning prints as one ``pointsam: warning: ...`` line.

One module per command (:mod:`~pointsam.cli.train`, :mod:`~pointsam.cli.eval`,
:mod:`~pointsam.cli.predict`, :mod:`~pointsam.cli.viz`, :mod:`~pointsam.cli.demo`,
:mod:`~pointsam.cli.bench`, :mod:`~pointsam.cli.sweep`, :mod:`~pointsam.cli.models`), each with ``add_parser(subparsers)`` and
``run(args)``; this is the only layer that loads checkpoints and datasets and
hands them to the engine or to :mod:`pointsam.viz`.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from . import bench, demo, models, predict, sweep, train, viz
from . import eval as eval_
from . import export as export_
from .demo import demo_config

__all__ = ["main", "build_parser", "demo_config"]


#: The sub-commands in the order ``pointsam --help`` lists them.
COMMANDS = {
    "train": train,
    "eval": eval_,
    "predict": predict,
    "viz": viz,
    "demo": demo,
    "bench": bench,
    "sweep": sweep,
    "models": models,
    "export": export_,
}


def build_parser() -> argparse.ArgumentParser:
    """The ``pointsam`` parser: each command module adds its own sub-parser."""
    p = argparse.ArgumentParser(
        prog="pointsam",
        description="Attention for 3D point clouds.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with `pointsam demo` (no data needed).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return p


def _one_line_warning(message: Any, category: Any, filename: Any, lineno: Any,
                      file: Any = None, line: Any = None) -> None:
    print(f"pointsam: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user error prints one line and returns 2.

    User errors: config, checkpoint, run-directory and file-format errors,
    missing files, bad values, other OS errors (disk full, permissions) and a
    diverged training (``FloatingPointError``). Warnings print as one
    ``pointsam: warning: ...`` line.
    """
    args = build_parser().parse_args(argv)
    from pointsam.engine._guards import one_line
    from pointsam.engine.checkpoint import CheckpointError
    from pointsam.engine.config import ConfigError
    from pointsam.engine.rundir import RunDirError

    old_show = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        return int(args.func(args) or 0)
    except (ConfigError, CheckpointError, RunDirError, OSError, ValueError,
            FloatingPointError) as e:
        if os.environ.get("POINTSAM_DEBUG"):
            raise
        print(f"pointsam: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pointsam: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = old_show


if __name__ == "__main__":
    raise SystemExit(main())
