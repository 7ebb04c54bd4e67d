r"""``pointsam predict (CHECKPOINT | --model NAME | --onnx M.onnx | --pt2 M.pt2) FILE
--out OUT.ply``, or ``... DIR_OR_GLOB --out OUT_DIR [--overwrite] [--jobs N]``.

A folder or a quoted glob of clouds writes one output per input into
``OUT_DIR`` (same stem), with a progress bar, skipping finished inputs,
going on past bad files and listing them at the end (exit code 1): see
:mod:`pointsam.cli._predict_many`.

``--onnx`` runs a ``pointsam export`` ONNX file in ONNX Runtime, ``--pt2`` a
``torch.export`` program, with the geometry plan computed by :mod:`pointsam.ops`.
All four sources go through the one prediction path,
:func:`~pointsam.engine.predict.predict_cloud`: the cloud is prepared by the
run's evaluation transform whatever runs the network.

The readers return a file as it is; the shipped models expect the canonical
frame, z up (their cards say so). ``--up-axis x|y`` turns a cloud of another
convention z up first, by the proper rotation of
:class:`~pointsam.data.transforms.UpAxisToZ` (y up: +90 deg about x,
:math:`(x, y, z) \mapsto (x, -z, y)`; x up: -90 deg about y,
:math:`(x, y, z) \mapsto (-z, y, x)`); the output PLY keeps the file's own
coordinates.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._predict_one import (  # noqa: F401  (re-exported: export and viz use them)
    Source,
    check_one_source,
    describe_columns,
    load_model_arg,
    load_source,
    memory_estimate,
    predict_file,
)

__all__ = ["add_parser", "run", "describe_columns", "load_source", "predict_file",
           "Source", "check_one_source", "load_model_arg", "memory_estimate"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``predict`` sub-command to an ``argparse`` sub-parser set."""
    pr = subparsers.add_parser(
        "predict", help="predict on a cloud file (or a folder or glob of them), "
        "write a PLY per cloud")
    pr.add_argument("checkpoint", nargs="?", default=None,
                    help="a checkpoint written by pointsam train (or use --model)")
    pr.add_argument("--model", default=None, metavar="NAME",
                    help="a trained model shipped in the package instead of a "
                    "checkpoint (list them: pointsam models)")
    pr.add_argument("--onnx", default=None, metavar="MODEL.onnx",
                    help="run a `pointsam export` ONNX file in ONNX Runtime (the "
                    "plan from pointsam.ops) instead of a checkpoint")
    pr.add_argument("--pt2", default=None, metavar="MODEL.pt2",
                    help="run a `pointsam export --format pt2` program (the "
                    "plan from pointsam.ops) instead of a checkpoint")
    pr.add_argument("file", help="a .ply/.pcd/.xyz/.txt/.npy/.bin/.las cloud, a "
                    "folder of them, or a quoted glob ('scans/*.bin')")
    pr.add_argument(
        "--out",
        required=True,
        help="output .ply (coloured by label); a classification also writes the "
        "class probabilities next to it as .json. For a folder or glob: the "
        "output folder (NAME.ply, NAME.json per input NAME.*)",
    )
    pr.add_argument(
        "--overwrite",
        action="store_true",
        help="folder or glob: predict again the inputs whose output exists "
        "(default: skip them)",
    )
    pr.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="folder or glob: N worker processes, each loading the model once "
        "and using cores/N threads (default: 1, in this process)",
    )
    pr.add_argument(
        "--bin-columns",
        type=int,
        default=None,
        help="float32 values per point of a .bin scan (default: judged from "
        "the data among 4 KITTI, 5 nuScenes, 6 Waymo/xyzrgb; refused when "
        "it cannot be told)",
    )
    pr.add_argument(
        "--up-axis",
        choices=("x", "y", "z"),
        default="z",
        help="the cloud's up axis; x or y turns it z up (the frame the models "
        "expect) by a proper rotation, y: (x, y, z) -> (x, -z, y), "
        "x: (x, y, z) -> (-z, y, x) (default: z, as read)",
    )
    pr.add_argument(
        "--max-points",
        type=int,
        default=5_000_000,
        help="refuse a larger cloud, saying the memory it would need (default: 5M)",
    )
    pr.add_argument(
        "--category",
        type=int,
        default=None,
        help="object category id (part segmentation)",
    )
    pr.add_argument(
        "--votes",
        type=int,
        default=None,
        metavar="V",
        help="whole scans: V passes turned about z, probabilities averaged "
        "(test-time augmentation; default: the run's train.votes, as its test "
        "evaluation used)",
    )
    pr.set_defaults(func=run)
    return pr


def run(args: argparse.Namespace) -> int:
    """Predict on one cloud (write the labelled PLY and the class JSON), or on
    every file of a folder or glob (see :mod:`pointsam.cli._predict_many`)."""
    from ._predict_many import is_many, run_many

    if is_many(args.file, args.out):
        return run_many(args, load_source)
    if Path(args.out).suffix.lower() != ".ply":
        raise ValueError(f"--out {args.out}: the prediction is written as a PLY, "
                         "give a path ending in .ply (or a folder, for a folder "
                         "or glob of inputs)")
    src = load_source(args)
    predict_file(args, src, args.file, args.out)
    return 0
