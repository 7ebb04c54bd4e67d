"""``pointsam bench [NAME ...] [--list] [--quick]``: runs ``python -m bench.NAME``.

The benchmarks are scripts of the source checkout (``bench/``, beside the
package), not part of the installed package: the command needs an editable
install of a clone and says so otherwise."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` sub-command to an ``argparse`` sub-parser set."""
    b = subparsers.add_parser("bench", help="run the benchmarks in bench/")
    b.add_argument("names", nargs="*", help="bench scripts to run (default: all)")
    b.add_argument("--list", action="store_true", help="list them and exit")
    b.add_argument(
        "--quick",
        action="store_true",
        help="pass --quick to each script (small sizes, a smoke test)",
    )
    b.set_defaults(func=run)
    return b


def _bench_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "bench"


def run(args: argparse.Namespace) -> int:
    """List or run the bench scripts; the exit code ORs theirs."""
    root = _bench_dir()
    scripts = (
        sorted(
            p
            for p in root.glob("*.py")
            if not p.name.startswith("_") and "__main__" in p.read_text()
        )
        if root.is_dir()
        else []
    )
    if not scripts:
        raise FileNotFoundError(
            f"no benchmark scripts in {root}: the benchmarks live in the source "
            "checkout's bench/ folder, which an installed wheel does not carry; "
            "run `pointsam bench` from an editable install of a git clone "
            "(bash run.sh setup), or `python -m bench.NAME` in the clone")
    if args.list:
        for s in scripts:
            print(s.stem)
        return 0
    if args.names:
        known = {s.stem: s for s in scripts}
        bad = [n for n in args.names if n not in known]
        if bad:
            raise ValueError(f"unknown bench {bad}; available: {sorted(known)}")
        scripts = [known[n] for n in args.names]
    rc = 0
    for s in scripts:
        print(f"== {s.name}", flush=True)
        cmd = [sys.executable, "-m", f"bench.{s.stem}"]
        rc |= subprocess.call(
            cmd + (["--quick"] if args.quick else []), cwd=root.parent
        )
    return rc
