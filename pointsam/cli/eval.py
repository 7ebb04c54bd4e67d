"""``pointsam eval CHECKPOINT [--split test] [--votes N] [--set key=value ...]``.

The dataset must have the class names the checkpoint was trained on (stored in
its ``meta``); ``--set`` may change the data (``data.root`` ...), never the model.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from ._format import fmt

__all__ = ["add_parser", "run", "check_classes"]


def _dataset_names(ds: Any, attr: str) -> list[str] | None:
    """The dataset's declared ``classes`` or ``categories``
    (:class:`~pointsam.data.PointDataset`), or ``None`` when it declares none."""
    names = ds.classes if attr == "classes" else ds.categories
    return [str(n) for n in names] if names else None


def check_classes(meta: dict[str, Any], ds: Any, checkpoint: str, where: str) -> None:
    """Refuse a dataset whose class (or category) names differ from the checkpoint's.

    A checkpoint written before class names were stored gets a warning.
    """
    import warnings

    for key, attr in (("class_names", "classes"), ("category_names", "categories")):
        theirs = _dataset_names(ds, attr)
        if theirs is None:
            continue
        ours = meta.get(key)
        if not ours:
            if key == "class_names" and "category_names" not in meta:
                warnings.warn(f"{checkpoint} stores no class names (an older "
                              f"checkpoint): cannot check that {where} has the "
                              "classes it was trained on", stacklevel=2)
            continue
        if list(ours) != theirs:
            raise ValueError(
                f"{where} has other {key.split('_')[0]} names than {checkpoint}: "
                f"the checkpoint knows {len(ours)} ({', '.join(ours[:6])}"
                f"{', ...' if len(ours) > 6 else ''}), the dataset has "
                f"{len(theirs)} ({', '.join(theirs[:6])}"
                f"{', ...' if len(theirs) > 6 else ''}); its scores would mean "
                "nothing")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``eval`` sub-command to an ``argparse`` sub-parser set."""
    e = subparsers.add_parser("eval", help="evaluate a checkpoint on a split")
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
    e.set_defaults(func=run)
    return e


def run(args: argparse.Namespace) -> int:
    """Evaluate the checkpoint on one split and print (and optionally save) it."""
    import torch
    from torch_geometric.loader import DataLoader

    from pointsam.data import split_train_val
    from pointsam.engine.builders import (
        TransformedDataset,
        build_dataset,
        build_transform,
    )
    from pointsam.engine.config import (
        ConfigError,
        apply_overrides,
        config_from_dict,
        config_to_dict,
    )
    from pointsam.engine.evaluation import evaluate
    from pointsam.engine.predict import load_trained

    if args.votes < 1:
        raise ValueError(f"--votes must be >= 1, got {args.votes}")
    fixed = [o for o in args.overrides if o.split("=", 1)[0].strip().startswith(
        ("model.", "train.task"))]
    if fixed:
        raise ConfigError(
            f"eval --set {fixed[0]}: the model (model.*, train.task) is rebuilt "
            "from the checkpoint's own arguments and weights, so it cannot be "
            "changed at evaluation; train a new model to change it")
    model, task, cfg, meta = load_trained(args.checkpoint)
    cfg = config_from_dict(apply_overrides(config_to_dict(cfg), args.overrides))
    if cfg.train.num_threads > 0:
        torch.set_num_threads(cfg.train.num_threads)
    if args.split == "val":  # the model-selection carve-out, as in training
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
    check_classes(meta, ds, args.checkpoint, f"{cfg.data.name}:{args.split}")
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
    print(f"{args.split} ({len(ds)} samples, {args.votes} vote(s)): {fmt(res)}")
    if args.json_out:
        from pointsam._atomic import atomic_write_text

        atomic_write_text(args.json_out, json.dumps(res, indent=2) + "\n")
    return 0
