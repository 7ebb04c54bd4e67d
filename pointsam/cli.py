"""The ``pointsam`` command: train, eval, predict, viz, demo, bench."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pointsam", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="train a small attention model on synthetic data")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"pointsam {args.command}: not yet available", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
