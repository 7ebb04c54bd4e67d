r"""The ``pointsam`` command: train, eval, predict, viz, demo, bench.

::

    pointsam demo [--epochs N] [--out runs/demo] [--quick]
    pointsam train CONFIG [--set key=value ...] [--resume]
    torchrun --nproc_per_node=2 -m pointsam train CONFIG      # DDP
    pointsam eval CHECKPOINT [--split test] [--votes N] [--set data.root=...]
    pointsam predict CHECKPOINT FILE --out OUT.ply [--category C]
    pointsam viz CHECKPOINT SOURCE --out DIR                   # pointsam.viz.cli
    pointsam bench [NAME ...] [--list]              # runs python -m bench.NAME
    pointsam sweep CONFIG ... --seeds 0 1 2 --out DIR  # pointsam.engine.sweep

A user error (missing file, unknown config key, bad value, missing dataset,
unsafe checkpoint) prints one ``pointsam: error: ...`` line and exits with 2;
``POINTSAM_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "demo_config"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pointsam",
        description="Attention for 3D point clouds.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Start with `pointsam demo` (no data needed).",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train from a YAML config in train/")
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

    e = sub.add_parser("eval", help="evaluate a checkpoint on a split")
    e.add_argument("checkpoint")
    e.add_argument(
        "--split",
        default="test",
        help="split to evaluate (default: test); 'val' is the carve-out of train "
        "that chose best.pt (data.val_fraction, data.split_seed); another name is "
        "the dataset's own split",
    )
    e.add_argument(
        "--votes",
        type=int,
        default=1,
        help="test-time augmentation passes (default: 1)",
    )
    e.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. data.root",
    )
    e.add_argument(
        "--json",
        dest="json_out",
        default=None,
        help="also write the results to this JSON file",
    )

    pr = sub.add_parser("predict", help="predict on one cloud file, write a PLY")
    pr.add_argument("checkpoint")
    pr.add_argument("file", help="a .ply/.pcd/.xyz/.txt/.npy/.bin/.las cloud")
    pr.add_argument(
        "--out",
        required=True,
        help="output .ply (coloured by label); a classification also writes the "
        "class probabilities next to it as .json",
    )
    pr.add_argument(
        "--bin-columns",
        type=int,
        default=None,
        help="float32 values per point of a .bin scan (default: 4, KITTI; "
        "5 for nuScenes *.pcd.bin; 6 for xyzrgb)",
    )
    pr.add_argument(
        "--category",
        type=int,
        default=None,
        help="object category id (part segmentation)",
    )

    try:  # the viz issue's own sub-parser, when it has landed
        from pointsam.viz import cli as viz_cli

        viz_cli.add_parser(sub)
    except (ImportError, AttributeError):
        v = sub.add_parser(
            "viz", help="draw attention weights (pointsam.viz)", add_help=False
        )
        v.add_argument("args", nargs=argparse.REMAINDER)

    d = sub.add_parser("demo", help="train a small attention model on synthetic data")
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

    b = sub.add_parser("bench", help="run the benchmarks in bench/")
    b.add_argument("names", nargs="*", help="bench scripts to run (default: all)")
    b.add_argument("--list", action="store_true", help="list them and exit")
    b.add_argument(
        "--quick",
        action="store_true",
        help="pass --quick to each script (small sizes, a smoke test)",
    )
    from pointsam.engine.sweep import add_sweep_parser

    add_sweep_parser(sub)
    return p


# ---------------------------------------------------------------------- train
def _cmd_train(args: argparse.Namespace) -> int:
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
        _print_summary(summary, Path(cfg.train.out_dir))
    return 0


def _fmt(d: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in d.items()
        if not isinstance(v, (list, dict)) and k not in ("split",)
    )


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    print(f"best validation: {_fmt(summary['best'])}")
    print(f"test ({summary['test']['split']}, evaluated once): {_fmt(summary['test'])}")
    print(f"outputs in {out}: best.pt, last.pt, metrics.csv, summary.json, tb/")


# ----------------------------------------------------------------------- eval
def _cmd_eval(args: argparse.Namespace) -> int:
    from torch_geometric.loader import DataLoader

    from pointsam.engine.builders import (
        TransformedDataset,
        build_dataset,
        build_transform,
    )
    from pointsam.engine.config import apply_overrides, config_from_dict, config_to_dict
    from pointsam.engine.predict import load_trained
    from pointsam.engine.trainer import evaluate

    if args.votes < 1:
        raise ValueError(f"--votes must be >= 1, got {args.votes}")
    model, task, cfg, meta = load_trained(args.checkpoint)
    cfg = config_from_dict(apply_overrides(config_to_dict(cfg), args.overrides))
    if cfg.train.num_threads > 0:
        import torch

        torch.set_num_threads(cfg.train.num_threads)
    if args.split == "val":  # the model-selection carve-out, as in training
        from pointsam.engine.trainer import split_train_val

        base = build_dataset(cfg, "train")
        _, va = split_train_val(len(base), cfg.data.val_fraction, cfg.data.split_seed)
        if not va:
            raise ValueError("--split val: this run had no validation carve-out "
                             "(data.val_fraction=0)")
        ds = TransformedDataset(base, va, build_transform(cfg, train=False))
    else:
        ds = TransformedDataset(
            build_dataset(cfg, args.split), None, build_transform(cfg, train=False)
        )
    loader = DataLoader(ds, batch_size=cfg.data.eval_batch_size or cfg.data.batch_size)
    t0 = time.time()
    res = evaluate(
        model,
        loader,
        task,
        next(model.parameters()).device,
        votes=args.votes,
        voxel_size=cfg.train.voxel_size,
        chunk_points=cfg.train.chunk_points,
        seed=cfg.train.seed,
    )
    res = {
        "checkpoint": str(args.checkpoint),
        "split": args.split,
        "votes": args.votes,
        "samples": len(ds),
        "seconds": round(time.time() - t0, 2),
        **res,
    }
    print(f"{args.split} ({len(ds)} samples, {args.votes} vote(s)): {_fmt(res)}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


# -------------------------------------------------------------------- predict
def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from pointsam.data import read_cloud
    from pointsam.engine.predict import load_trained, predict_cloud
    from pointsam.viz import export_ply, label_colors

    if Path(args.out).suffix.lower() != ".ply":
        raise ValueError(f"--out {args.out}: the prediction is written as a PLY, "
                         "give a path ending in .ply")
    model, task, cfg, meta = load_trained(args.checkpoint)
    cats = meta.get("category_names") or []
    if task.name == "partseg" and args.category is None and cats:
        raise ValueError("part segmentation needs the shape's category: --category "
                         + ", ".join(f"{i}={c}" for i, c in enumerate(cats)))
    data = read_cloud(args.file, bin_columns=args.bin_columns)
    res = predict_cloud(model, task, cfg, data, category=args.category)
    pos = data.pos.numpy()
    names = meta.get("class_names") or []
    if task.name == "cls":
        label = res["label"]
        name = names[label] if label < len(names) else str(label)
        probs = res["probs"]
        colors = np.repeat(label_colors(np.array([label])), len(pos), 0)
        top = sorted(range(len(probs)), key=lambda i: -probs[i])[:5]
        comments = [f"pointsam class {label} {name}"] + [
            f"pointsam prob {i} {names[i] if i < len(names) else i} {probs[i]:.6f}"
            for i in range(len(probs))
        ]
        export_ply(args.out, pos, colors=colors, comments=comments)
        print(f"class: {name} (id {label}, p={probs[label]:.3f})")
        for i in top:
            print(f"  {names[i] if i < len(names) else i}: {probs[i]:.4f}")
        Path(args.out).with_suffix(".json").write_text(
            json.dumps(
                {"class": label, "name": name, "probs": probs, "class_names": names},
                indent=2,
            )
            + "\n"
        )
    else:
        labels = res["labels"].numpy()
        conf = res["probs"].max(-1).values.numpy()
        export_ply(
            args.out,
            pos,
            colors=label_colors(labels),
            labels=labels,
            weights={"confidence": conf},
            comments=[f"pointsam {task.name} labels"],
        )
        counts = np.bincount(labels)
        print(
            f"{len(labels)} points labelled; per label: "
            + ", ".join(
                f"{(names[i] if i < len(names) else i)}={c}"
                for i, c in enumerate(counts)
                if c
            )
        )
    print(f"wrote {args.out}"
          + (f" and {Path(args.out).with_suffix('.json')}" if task.name == "cls" else ""))
    return 0


# ------------------------------------------------------------------------ viz
def _cmd_viz(args: argparse.Namespace) -> int:
    func = getattr(args, "func", None)
    if func is not None:  # parsed by pointsam.viz.cli.add_parser
        return int(func(args) or 0)
    print(
        "pointsam viz: not yet available (pointsam.viz.cli is not installed)",
        file=sys.stderr,
    )
    return 2


# ----------------------------------------------------------------------- demo
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


def _cmd_demo(args: argparse.Namespace) -> int:
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
    print(f"[demo] best validation: {_fmt(summary['best'])}")
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
        Path(__file__).resolve().parents[1]
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
    try:
        from pointsam.viz import write_demo_gallery
    except ImportError:
        print(
            "[demo] attention pictures: pointsam.viz.write_demo_gallery is not "
            "available yet; skipped"
        )
        return []
    try:
        return list(
            write_demo_gallery(trainer.model.eval(), trainer.datasets["test"], out_dir)
        )
    except Exception as e:  # rendering needs a working Open3D renderer
        print(f"[demo] attention pictures failed: {type(e).__name__}: {e}")
        return []


# ---------------------------------------------------------------------- bench
def _bench_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "bench"


def _cmd_bench(args: argparse.Namespace) -> int:
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
        print(f"pointsam bench: no benchmark scripts found in {root}", file=sys.stderr)
        return 2
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


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pointsam.engine.sweep import cmd_sweep

    return cmd_sweep(args)


_COMMANDS = {
    "train": _cmd_train,
    "eval": _cmd_eval,
    "predict": _cmd_predict,
    "viz": _cmd_viz,
    "demo": _cmd_demo,
    "bench": _cmd_bench,
    "sweep": _cmd_sweep,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pointsam.engine.checkpoint import CheckpointError
    from pointsam.engine.config import ConfigError

    try:
        return _COMMANDS[args.command](args)
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
