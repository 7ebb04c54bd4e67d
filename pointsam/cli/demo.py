"""``pointsam demo [--epochs N] [--out runs/demo] [--quick]``: no data needed."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from ._format import fmt

__all__ = ["add_parser", "run", "demo_config"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``demo`` sub-command to an ``argparse`` sub-parser set."""
    d = subparsers.add_parser(
        "demo", help="train a small attention model on synthetic data"
    )
    d.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs (default: 15, capped at about 3.5 minutes)",
    )
    d.add_argument("--out", default="runs/demo", help="output folder (runs/demo)")
    d.add_argument(
        "--quick",
        action="store_true",
        help="a few seconds: tiny data and model (for tests)",
    )
    d.set_defaults(func=run)
    return d


def demo_config(out: str, epochs: int | None = None, quick: bool = False) -> Any:
    """The demo's config: a lite PointNet++ with CBAM on SyntheticShapes."""
    from pointsam.engine.config import config_from_dict

    if quick:
        d = {
            "model": {"name": "pointnet2_lite_cls", "args": {"attention": "cbam"}},
            "data": {
                "name": "synthetic_shapes",
                "num_points": 128,
                "batch_size": 8,
                "args": {"num_samples": 48},
            },
            "optim": {"lr": 0.003},
            "train": {
                "epochs": epochs or 1,
                "out_dir": out,
                "max_batches": 2,
                "progress": False,
                "tensorboard": False,
            },
        }
    else:
        d = {
            "model": {"name": "pointnet2_lite_cls", "args": {"attention": "cbam"}},
            "data": {
                "name": "synthetic_shapes",
                "num_points": 256,
                "batch_size": 16,
                "eval_batch_size": 32,
                "args": {"num_samples": 480, "num_points": 512, "rotation": "z"},
            },
            "optim": {"lr": 0.003},
            "train": {
                "epochs": epochs or 15,
                "out_dir": out,
                "time_budget_s": 0.0 if epochs else 210.0,
            },
        }
    return config_from_dict(d)


def run(args: argparse.Namespace) -> int:
    """Train the demo model, print its results, draw its attention."""
    import torch

    from pointsam.engine.trainer import Trainer

    cfg = demo_config(args.out, args.epochs, args.quick)
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5 * cores and torch.get_num_threads() > 1:
        # a busy CPU: several OpenMP threads spin against each other
        cfg.train.num_threads = 1
        print(
            f"[demo] the CPU is busy (load {load:.1f} on {cores} cores): using "
            "1 torch thread",
            flush=True,
        )
    out = Path(cfg.train.out_dir)
    print(
        f"[demo] training {cfg.model.name} (attention: "
        f"{cfg.model.args.get('attention')}) on {cfg.data.name} for "
        f"{cfg.train.epochs} epoch(s); outputs in {out}",
        flush=True,
    )
    t0 = time.time()
    trainer = Trainer(cfg)
    summary = trainer.fit()
    n_cls = trainer.task.num_classes
    print(
        f"[demo] trained in {time.time() - t0:.0f} s; "
        f"{summary['num_parameters']:,} parameters"
    )
    print(f"[demo] best validation: {fmt(summary['best'])}")
    test = summary["test"]
    if "oa" in test:
        print(
            f"[demo] test accuracy (evaluated once): {test['oa']:.3f} "
            f"(chance: {1 / n_cls:.3f}); mean class accuracy {test['macc']:.3f}"
        )
    print(
        f"[demo] checkpoint: {out / 'best.pt'}; log: {out / 'metrics.csv'}; "
        f"summary: {out / 'summary.json'}"
    )
    pictures = _demo_pictures(trainer, out / "attention")
    if pictures:
        print(f"[demo] attention pictures ({len(pictures)}) in {out / 'attention'}:")
        for p in pictures[:10]:
            print(f"  {p}")
    ck = out / "best.pt"
    print(
        f"[demo] next: pointsam eval {ck} --votes 3 ; "
        f"pointsam viz {ck} synthetic_shapes:test:0 --out {out / 'viz'}"
    )
    mn10 = (
        Path(__file__).resolve().parents[2]
        / ".."
        / "shared"
        / "data"
        / "modelnet10_pcd_1024"
    )
    if mn10.is_dir():
        print(
            f"[demo] ModelNet10 found at {mn10.resolve()}: try "
            "pointsam train train/modelnet10_pointnet2_lite_cbam.yaml "
            f"--set data.root={mn10.resolve()}"
        )
    return 0


def _demo_pictures(trainer: Any, out_dir: Path) -> list[Path]:
    from pointsam.viz import write_demo_gallery

    try:
        return list(
            write_demo_gallery(trainer.model.eval(), trainer.datasets["test"], out_dir)
        )
    except Exception as e:  # rendering needs a working Open3D renderer
        print(f"[demo] attention pictures failed: {type(e).__name__}: {e}")
        return []
