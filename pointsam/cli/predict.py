"""``pointsam predict CHECKPOINT FILE --out OUT.ply [--category C]``, or
``pointsam predict --onnx MODEL.onnx FILE --out OUT.ply`` (ONNX Runtime)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``predict`` sub-command to an ``argparse`` sub-parser set."""
    pr = subparsers.add_parser("predict", help="predict on one cloud file, write a PLY")
    pr.add_argument("checkpoint", help="a checkpoint (with --onnx: the cloud file)")
    pr.add_argument("file", nargs="?",
                    help="a .ply/.pcd/.xyz/.txt/.npy/.bin/.las cloud")
    pr.add_argument("--onnx", default=None, metavar="MODEL.onnx",
                    help="run a `pointsam export` ONNX file in ONNX Runtime (the "
                    "plan from pointsam.ops) instead of a checkpoint")
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
    pr.set_defaults(func=run)
    return pr


def run(args: argparse.Namespace) -> int:
    """Predict on one cloud; write the labelled PLY (and the class JSON)."""
    import numpy as np

    from pointsam.data import read_cloud
    from pointsam.engine.predict import load_trained, predict_cloud
    from pointsam.viz import export_ply, label_colors

    if Path(args.out).suffix.lower() != ".ply":
        raise ValueError(f"--out {args.out}: the prediction is written as a PLY, "
                         "give a path ending in .ply")
    if args.onnx is not None:
        from pointsam.export import predict_onnx

        if args.file is not None:
            raise ValueError("with --onnx give only the cloud file")
        data = read_cloud(args.checkpoint, bin_columns=args.bin_columns)
        res = predict_onnx(args.onnx, data, category=args.category)
        meta, task_name = res["meta"], res["task"]
    else:
        if args.file is None:
            raise ValueError("give CHECKPOINT FILE (or --onnx MODEL.onnx FILE)")
        model, task, cfg, meta = load_trained(args.checkpoint)
        task_name = task.name
        cats = meta.get("category_names") or []
        if task.name == "partseg" and args.category is None and cats:
            raise ValueError("part segmentation needs the shape's category: "
                             "--category "
                             + ", ".join(f"{i}={c}" for i, c in enumerate(cats)))
        data = read_cloud(args.file, bin_columns=args.bin_columns)
        res = predict_cloud(model, task, cfg, data, category=args.category)
    pos = data.pos.numpy()
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
          + (f" and {Path(args.out).with_suffix('.json')}" if task_name == "cls"
             else ""))
    return 0
