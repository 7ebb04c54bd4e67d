"""``pointsam models [NAME]``: list the shipped trained models, or show one's card."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``models`` sub-command to an ``argparse`` sub-parser set."""
    p = subparsers.add_parser(
        "models", help="list the trained models shipped in the package",
        description="List the trained models shipped in the package (use one with "
        "`pointsam predict --model NAME FILE --out OUT.ply` or `pointsam viz "
        "--model NAME FILE --out DIR`), or print one model's card.")
    p.add_argument("name", nargs="?", default=None,
                   help="print this model's card (training data, metrics, classes, "
                   "expected input, licence)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Print the table of shipped models, or one model card."""
    from pointsam.models.pretrained import (
        list_pretrained,
        model_card,
        pretrained_info,
        pretrained_path,
    )

    if args.name is not None:
        print(model_card(args.name).rstrip())
        print(f"\nfile: {pretrained_path(args.name)}")
        return 0
    names = list_pretrained()
    if not names:
        print("no trained models are shipped in this installation")
        return 0
    print(f"{'name':34s} {'task':7s} {'classes':>7s} {'size':>8s}  metrics")
    for n in names:
        info = pretrained_info(n)
        size = pretrained_path(n).stat().st_size / 1e6
        met = ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in (info.get("metrics") or {}).items()
                        if isinstance(v, (int, float)))
        print(f"{n:34s} {info['task']:7s} {len(info['classes']):7d} "
              f"{size:6.2f}MB  {met}")
    print("\nshow a card: pointsam models NAME; use one: pointsam predict --model "
          "NAME FILE --out OUT.ply")
    return 0
