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
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["add_parser", "run", "describe_columns", "load_source", "predict_file",
           "Source"]


def describe_columns(data: Any) -> str:
    """``read 4 columns: x y z remission (N points)``: how the file was read."""
    x = getattr(data, "x", None)
    c = int(x.size(1)) if x is not None else 0
    fields = list(getattr(data, "fields", None) or [])
    names = fields if len(fields) == c else [f"feature{i}" for i in range(c)]
    return (f"read {3 + c} columns: " + " ".join(["x", "y", "z", *names])
            + f" ({data.pos.size(0)} points)")


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
    pr.set_defaults(func=run)
    return pr


def check_one_source(args: argparse.Namespace) -> None:
    """Exactly one of ``CHECKPOINT``, ``--model NAME`` (and ``--onnx`` /
    ``--pt2``) is given."""
    onnx, pt2 = getattr(args, "onnx", None), getattr(args, "pt2", None)
    given = [a for a in (args.checkpoint, args.model, onnx, pt2) if a is not None]
    if len(given) != 1:
        either = ("CHECKPOINT, --model NAME, --onnx MODEL.onnx or --pt2 MODEL.pt2"
                  if hasattr(args, "onnx") else "CHECKPOINT or --model NAME")
        raise ValueError(f"give one of {either} before the cloud file "
                         "(`pointsam models` lists the names)")


def load_model_arg(args: argparse.Namespace) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``(model, task, config, meta)`` from ``CHECKPOINT`` or ``--model NAME``."""
    check_one_source(args)
    if args.model is not None:
        from pointsam.engine.pretrained import load_pretrained_trained

        return load_pretrained_trained(args.model)
    from pointsam.engine.predict import load_trained

    return load_trained(args.checkpoint)


#: resident memory of a ``pointsam predict`` process before the cloud (Python,
#: torch, the model), in bytes
_BASE_BYTES = 350 * 2**20


def memory_estimate(n: int, num_features: int, num_classes: int) -> int:
    r"""Peak memory in bytes of predicting ``n`` points with ``num_features``
    features and ``num_classes`` classes.

    .. math::
        \mathrm{need} = 350\,\mathrm{MiB} + n\,(8\,(3 + F) + 28\,C + 40)

    The cloud is held twice (the file's array and the tensors, 4 bytes a value),
    the :math:`C` float32 probabilities 7 times (the voxel scores, carried back
    to every point, the softmax output, the copies turned into the PLY columns
    and the PLY rows), plus the voxel index, labels, colours and confidence.
    Measured peak (``ru_maxrss``) with ``pointnet2_lite_lidarseg_kitti``
    (:math:`F = 1`, :math:`C = 19`; 604 bytes a point) on a synthetic
    :math:`N \times 4` ``.npy`` scan: 918 MiB for 1M points, 1,487 MiB for 2M,
    2,553 MiB for 4M, 5,773 MiB for 10M (estimated: 926, 1,502, 2,654, 6,110).
    """
    return _BASE_BYTES + n * (8 * (3 + num_features) + 28 * num_classes + 40)


def _check_size(args: argparse.Namespace, data: Any, num_classes: int | None,
                path: str | Path | None = None) -> None:
    """Refuse a cloud over ``--max-points``, with the memory it would need."""
    n = data.pos.size(0)
    if n <= args.max_points:
        return
    need = memory_estimate(n, 0 if data.x is None else int(data.x.size(1)),
                           20 if num_classes is None else num_classes)
    raise ValueError(f"{args.file if path is None else path}: {n:,} points is more "
                     f"than --max-points {args.max_points:,}; predicting it would "
                     f"need about {need / 2**30:.1f} GiB of memory. Split the scan, "
                     "or raise --max-points if the machine has it")


class Source(NamedTuple):
    """A loaded prediction source: what :func:`predict_file` needs."""

    model: Any
    task: Any
    cfg: Any
    meta: dict[str, Any]
    runner: Any = None


def load_source(args: argparse.Namespace) -> Source:
    """The model of ``CHECKPOINT``, ``--model``, ``--onnx`` or ``--pt2``; refuses
    a part-segmentation model without ``--category``."""
    exported = getattr(args, "onnx", None) or getattr(args, "pt2", None)
    runner = None
    if exported is not None:
        check_one_source(args)
        from pointsam.export import load_exported

        model, task, cfg, meta, runner = load_exported(exported)
    else:
        model, task, cfg, meta = load_model_arg(args)
    cats = meta.get("category_names") or []
    if task.name == "partseg" and args.category is None and cats:
        raise ValueError("part segmentation needs the shape's category: "
                         "--category "
                         + ", ".join(f"{i}={c}" for i, c in enumerate(cats)))
    return Source(model, task, cfg, meta, runner)


def predict_file(args: argparse.Namespace, src: Source, path: str | Path,
                 out: str | Path, *, data: Any = None,
                 say: Callable[[str], None] | None = print) -> int:
    """Predict one cloud file; write ``out`` (and, for a classification, its
    ``.json`` first). Returns the number of points.

    ``data`` is the cloud when already read; ``say`` prints the report (``None``:
    quiet, as in the batch form).
    """
    import numpy as np

    from pointsam._atomic import atomic_write_text
    from pointsam.data import read_cloud
    from pointsam.engine.predict import predict_cloud
    from pointsam.viz import export_ply, label_colors

    def tell(msg: str) -> None:
        if say is not None:
            say(msg)

    model, task, cfg, meta, runner = src
    task_name = task.name
    if data is None:
        data = read_cloud(path, bin_columns=args.bin_columns)
    _check_size(args, data, num_classes=task.num_classes, path=path)
    tell(describe_columns(data))
    pos = data.pos.numpy().copy()  # the file's coordinates, for the output
    up = getattr(args, "up_axis", "z")
    if up != "z":
        from pointsam.data.transforms import UpAxisToZ, has_normals

        rot = UpAxisToZ(up, normals="x" if has_normals(data) else None)
        data = rot(data)
        tell(f"turned {up} up to z up: (x, y, z) -> "
             + ("(x, -z, y)" if up == "y" else "(-z, y, x)"))
    res = predict_cloud(model, task, cfg, data, category=args.category,
                        runner=runner)
    names = meta.get("class_names") or []
    if task_name == "cls":
        label = res["label"]
        name = names[label] if label < len(names) else str(label)
        probs = res["probs"]
        colors = np.repeat(label_colors(np.array([label])), len(pos), 0)
        top = sorted(range(len(probs)), key=lambda i: -probs[i])[:5]
        comments = [f"pointsam class {label} {name}"] + [
            f"pointsam prob {i} {names[i] if i < len(names) else i} {probs[i]:.6f}"
            for i in range(len(probs))
        ]
        # the JSON first: an existing PLY marks a finished input (batch skip)
        atomic_write_text(
            Path(out).with_suffix(".json"),
            json.dumps(
                {"class": label, "name": name, "probs": probs, "class_names": names},
                indent=2,
            )
            + "\n"
        )
        export_ply(out, pos, colors=colors, comments=comments)
        tell(f"class: {name} (id {label}, p={probs[label]:.3f})")
        for i in top:
            tell(f"  {names[i] if i < len(names) else i}: {probs[i]:.4f}")
    else:
        labels = res["labels"].numpy()
        probs = np.asarray(res["probs"])
        conf = probs.max(-1)
        palette = meta.get("class_colors")
        colors = np.asarray(palette)[labels] if palette else label_colors(labels)
        weights = {"confidence": conf}
        if meta.get("pretrained"):  # a shipped model: every class probability too
            for i, nm in enumerate(names):
                weights["prob_" + "".join(ch if ch.isalnum() else "_" for ch in nm)] = (
                    probs[:, i])
        export_ply(
            out,
            pos,
            colors=colors,
            labels=labels,
            weights=weights,
            comments=[f"pointsam {task_name} labels"],
        )
        counts = np.bincount(labels)
        tell(
            f"{len(labels)} points labelled; per label: "
            + ", ".join(
                f"{(names[i] if i < len(names) else i)}={c}"
                for i, c in enumerate(counts)
                if c
            )
        )
    tell(f"wrote {out}"
         + (f" and {Path(out).with_suffix('.json')}" if task_name == "cls" else ""))
    return int(len(pos))


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
