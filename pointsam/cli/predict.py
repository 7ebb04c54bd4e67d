r"""``pointsam predict (CHECKPOINT | --model NAME | --onnx M.onnx | --pt2 M.pt2) FILE
--out OUT.ply``.

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
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run", "describe_columns"]


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
    pr = subparsers.add_parser("predict", help="predict on one cloud file, write a PLY")
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


def _check_size(args: argparse.Namespace, data: Any, num_classes: int | None) -> None:
    """Refuse a cloud over ``--max-points``, with the memory it would need."""
    n = data.pos.size(0)
    if n <= args.max_points:
        return
    # per point: xyz + features in, C probabilities (float32) held twice
    # (scores, carried back) and written once, label, colour, confidence
    c = 20 if num_classes is None else num_classes
    need = n * (4 * (3 + (0 if data.x is None else data.x.size(1))) + 3 * 4 * c + 24)
    raise ValueError(f"{args.file}: {n:,} points is more than --max-points "
                     f"{args.max_points:,}; predicting it would need about "
                     f"{need / 2**30:.1f} GiB of memory. Split the scan, or "
                     "raise --max-points if the machine has it")


def run(args: argparse.Namespace) -> int:
    """Predict on one cloud; write the labelled PLY (and the class JSON)."""
    import numpy as np

    from pointsam._atomic import atomic_write_text
    from pointsam.data import read_cloud
    from pointsam.engine.predict import predict_cloud
    from pointsam.viz import export_ply, label_colors

    if Path(args.out).suffix.lower() != ".ply":
        raise ValueError(f"--out {args.out}: the prediction is written as a PLY, "
                         "give a path ending in .ply")
    exported = getattr(args, "onnx", None) or getattr(args, "pt2", None)
    runner = None
    if exported is not None:
        check_one_source(args)
        from pointsam.export import load_exported

        model, task, cfg, meta, runner = load_exported(exported)
    else:
        model, task, cfg, meta = load_model_arg(args)
    task_name = task.name
    cats = meta.get("category_names") or []
    if task.name == "partseg" and args.category is None and cats:
        raise ValueError("part segmentation needs the shape's category: "
                         "--category "
                         + ", ".join(f"{i}={c}" for i, c in enumerate(cats)))
    data = read_cloud(args.file, bin_columns=args.bin_columns)
    _check_size(args, data, num_classes=task.num_classes)
    print(describe_columns(data))
    pos = data.pos.numpy().copy()  # the file's coordinates, for the output
    up = getattr(args, "up_axis", "z")
    if up != "z":
        from pointsam.data.transforms import UpAxisToZ, has_normals

        rot = UpAxisToZ(up, normals="x" if has_normals(data) else None)
        data = rot(data)
        print(f"turned {up} up to z up: (x, y, z) -> "
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
        export_ply(args.out, pos, colors=colors, comments=comments)
        print(f"class: {name} (id {label}, p={probs[label]:.3f})")
        for i in top:
            print(f"  {names[i] if i < len(names) else i}: {probs[i]:.4f}")
        atomic_write_text(
            Path(args.out).with_suffix(".json"),
            json.dumps(
                {"class": label, "name": name, "probs": probs, "class_names": names},
                indent=2,
            )
            + "\n"
        )
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
            args.out,
            pos,
            colors=colors,
            labels=labels,
            weights=weights,
            comments=[f"pointsam {task_name} labels"],
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
          + (f" and {Path(args.out).with_suffix('.json')}" if task_name == "cls" else ""))
    return 0
