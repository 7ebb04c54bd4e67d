r"""The ``pointsam`` command: train, eval, predict, viz, demo, bench.

::

    pointsam demo [--epochs N] [--out runs/demo] [--quick]
    pointsam train CONFIG [--set key=value ...] [--resume]
    torchrun --nproc_per_node=2 -m pointsam train CONFIG      # DDP
    pointsam eval CHECKPOINT [--split test] [--votes N] [--set data.root=...]
    pointsam predict CHECKPOINT FILE --out OUT.ply [--category C]
    pointsam viz CHECKPOINT SOURCE --out DIR
    pointsam bench [NAME ...] [--list]              # runs python -m bench.NAME
    pointsam export CHECKPOINT --format onnx|pt2 --out FILE [--with-attention]

A user error (missing file, unknown config key, bad value, missing dataset,
unsafe checkpoint) prints one ``pointsam: error: ...`` line and exits with 2;
``POINTSAM_DEBUG=1`` shows the traceback instead.

One module per command (:mod:`~pointsam.cli.train`, :mod:`~pointsam.cli.eval`,
:mod:`~pointsam.cli.predict`, :mod:`~pointsam.cli.viz`, :mod:`~pointsam.cli.demo`,
:mod:`~pointsam.cli.bench`), each with ``add_parser(subparsers)`` and
``run(args)``; this is the only layer that loads checkpoints and datasets and
hands them to the engine or to :mod:`pointsam.viz`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import bench, demo, predict, train, viz
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user error prints one line and returns 2."""
    args = build_parser().parse_args(argv)
    from pointsam.engine.checkpoint import CheckpointError
    from pointsam.engine.config import ConfigError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError) as e:
        if os.environ.get("POINTSAM_DEBUG"):
            raise
        print(f"pointsam: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pointsam: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
