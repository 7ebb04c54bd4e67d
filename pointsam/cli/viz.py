r"""``pointsam viz (CHECKPOINT | --model NAME) SOURCE --out DIR [--layer NAME]``.

Loads a checkpoint written by :mod:`pointsam.engine`, reads one cloud, prepares
it as evaluation does (normalisation and sampling of the checkpoint's config),
runs the model once and writes the attention pictures (PNG) and raw weights
(PLY) of every attention layer, or of ``--layer``; then prints their paths.

``SOURCE`` is a cloud file (``.ply .pcd .xyz .txt .npy .bin .las``, read by
:func:`pointsam.data.read_cloud`) or ``dataset:split:index``
(``modelnet10:test:0``; an empty dataset name, ``:test:0``, means the
checkpoint's own dataset). The pointsam command wires this in with
``add_parser(subparsers)``; the handler is :func:`run`. This is the command
layer: it loads the checkpoint and the data (engine, data) and hands them to
:func:`pointsam.viz.gallery.visualize`, which only draws.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run", "load_source", "main"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``viz`` sub-command to an ``argparse`` sub-parser set."""
    p = subparsers.add_parser(
        "viz", help="draw the attention weights of a checkpoint on one cloud",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a checkpoint written by pointsam train/demo (or use --model)")
    p.add_argument("source", help="a cloud file, or dataset:split:index")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="a trained model shipped in the package instead of a "
                   "checkpoint (list them: pointsam models)")
    p.add_argument("--out", default=None, help="output folder for PNGs and PLYs")
    p.add_argument("--html", default=None, metavar="OUT.html",
                   help="write the interactive viewer: one self-contained offline "
                   "HTML file (every map, heads, labels, click for neighbours)")
    p.add_argument("--html-max-points", type=int, default=None, metavar="N",
                   help="the viewer's display budget: a cloud of more points is "
                   "shown as a random subsample of N (the page says so; the "
                   "model still runs on every point). Default: 200,000; 0: every "
                   "point, refused with the memory it needs when the machine "
                   "lacks it")
    p.add_argument("--layer", default=None,
                   help="only this attention layer (module name, prefix or glob)")
    p.add_argument("--query", type=int, default=None,
                   help="query point index for neighbour/token maps "
                        "(default: the point nearest the centroid)")
    p.add_argument("--size", default="640x260", help="PNG size WIDTHxHEIGHT")
    p.add_argument("--views", default="iso,top",
                   help="comma-separated views: iso, front, side, top, back")
    p.add_argument("--up", default="z", choices=("z", "y"), help="the up axis")
    p.add_argument("--backend", default="auto", choices=("auto", "open3d", "numpy"))
    p.add_argument("--num-points", type=int, default=None,
                   help="sample the cloud to this many points by farthest-point "
                   "sampling (default: the config's data.num_points). Whole-scan "
                   "semseg checkpoints (train.voxel_size or train.chunk_points) "
                   "use every point by default; with --num-points the scan is "
                   "subsampled to at most N points, labels kept with their points")
    p.add_argument("--category", type=int, default=None,
                   help="part segmentation: the shape's category id")
    p.add_argument("--no-ply", action="store_true", help="write PNGs only")
    p.add_argument("--bin-columns", type=int, default=None,
                   help="float32 values per point of a .bin SOURCE (default: 4, "
                   "KITTI; 5 for nuScenes *.pcd.bin; 6 for xyzrgb)")
    p.set_defaults(func=run)
    return p


def _parse_size(s: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must be WIDTHxHEIGHT, got {s!r}") from None
    if w < 64 or h < 64:
        raise ValueError(f"--size {s} is too small (at least 64x64)")
    return w, h


def load_source(source: str, cfg: Any, num_points: int | None = None,
                bin_columns: int | None = None) -> Any:
    """One ``Data`` cloud from a file or ``dataset:split:index``, prepared for eval.

    The cloud goes through the evaluation transform of ``cfg``
    (:func:`pointsam.engine.builders.build_transform`). ``num_points`` replaces
    ``data.num_points``; a whole-scan semseg config (``train.voxel_size`` or
    ``train.chunk_points``), whose transform keeps every point, is then
    subsampled to at most ``num_points`` by farthest-point sampling (every
    per-point field, ``pos``/``x``/``y``, with the same index).
    """
    from pointsam.engine.builders import build_dataset, build_transform

    cfg = copy.deepcopy(cfg)
    if num_points is not None:
        if num_points < 1:
            raise ValueError(f"--num-points must be positive, got {num_points}")
        cfg.data.num_points = num_points
    path = Path(source)
    if not path.exists() and source.count(":") == 2:
        name, split, index = source.split(":")
        from pointsam.engine.builders import DATASETS

        if name and name not in DATASETS:
            raise ValueError(f"SOURCE {source!r}: unknown dataset {name!r}; known: "
                             f"{', '.join(DATASETS)} (or a cloud file)")
        if name:
            cfg.data.name = name
            cfg.data.root = None
        try:
            i = int(index)
        except ValueError:
            raise ValueError(f"SOURCE {source!r}: the index must be an integer") \
                from None
        ds = build_dataset(cfg, split)
        if not -len(ds) <= i < len(ds):
            raise ValueError(f"SOURCE {source!r}: index {i} is out of range for the "
                             f"{len(ds)} samples of {cfg.data.name}:{split}")
        data = ds[i]
    else:
        if not path.is_file():
            raise FileNotFoundError(f"SOURCE {source!r} is neither a file nor "
                                    "dataset:split:index")
        from pointsam.data import read_cloud

        data = read_cloud(path, bin_columns=bin_columns)
    t = build_transform(cfg, train=False)
    data = t(data) if t is not None else data
    if num_points is not None and data.pos.size(0) > num_points:
        # whole-scan semseg: build_transform skips FixedPoints (eval uses every
        # point); --num-points still means "this many points"
        from pointsam.data.transforms import FixedPoints

        data = FixedPoints(num_points, method="fps", replace=False)(data)
    return data


def _html_max_points(n: int | None) -> int | None:
    """``--html-max-points``: the default budget, or ``None`` (0: every point)."""
    from pointsam.viz.scene import DEFAULT_MAX_POINTS

    if n is None:
        return DEFAULT_MAX_POINTS
    if n < 0:
        raise ValueError(f"--html-max-points must be positive (0: every point), "
                         f"got {n}")
    return n or None


def run(args: argparse.Namespace) -> int:
    """Handle ``pointsam viz``: write the pictures and print their paths."""
    import torch

    from pointsam.engine.tasks import PartSegTask
    from pointsam.viz.gallery import visualize

    from .predict import load_model_arg

    if args.out is None and args.html is None:
        raise ValueError("give --out DIR (figures) and/or --html FILE (viewer)")
    if args.out is not None:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is an existing file; --out must be a "
                             "directory (created if missing) for the PNGs and PLYs")
    size = _parse_size(args.size)
    views = [v.strip() for v in args.views.split(",") if v.strip()]
    max_points = _html_max_points(args.html_max_points)
    model, task, cfg, meta = load_model_arg(args)
    data = load_source(args.source, cfg, args.num_points,
                       args.bin_columns)
    from pointsam.engine._guards import drop_unused_features

    data = drop_unused_features(model, data)
    category_parts = None
    if isinstance(task, PartSegTask):
        category_parts = task.category_parts
        num_cat = len(category_parts)
        cat = args.category if args.category is not None else (
            int(data.category.reshape(-1)[0]) if "category" in data else None)
        if cat is None:
            raise ValueError("part segmentation needs the shape's category "
                             f"(--category 0..{num_cat - 1})")
        if not 0 <= cat < num_cat:
            raise ValueError(f"--category must be in 0..{num_cat - 1}, got {cat}")
        data.category = torch.tensor([cat])
    if args.html is not None:  # before the figures: a refusal costs nothing
        from pointsam.viz.html import check_viewer_memory

        check_viewer_memory(model, data, max_points)
    paths = [] if args.out is None else visualize(
        model, data, args.out, layer=args.layer, query=args.query,
        class_names=meta.get("class_names") or None, task=task.name, size=size,
        views=views, up=args.up, backend=args.backend, ply=not args.no_ply,
        category_parts=category_parts)
    if args.html is not None:
        from pointsam.viz.html import to_html  # every layer: the page has a selector

        shown = args.model if args.model is not None else Path(args.checkpoint).name
        paths.append(to_html(
            model, data, args.html, class_names=meta.get("class_names") or None,
            query=args.query, max_points=max_points, check_memory=False,
            title=f"{shown} on {Path(args.source).name}"))
    for p in paths:
        print(p)
    if args.out is not None and not any(
            p.name not in ("labels.png", "labels.ply", "input.png") for p in paths):
        print("note: the model recorded no attention weights (a plain backbone?)",
              file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``viz`` on its own (``python -m pointsam.cli.viz ...``)."""
    parser = argparse.ArgumentParser(prog="pointsam")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["viz", *(sys.argv[1:] if argv is None else argv)])
    from pointsam.engine.checkpoint import CheckpointError

    try:
        return run(args)
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        print(f"pointsam viz: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
