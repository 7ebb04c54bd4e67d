r"""The single-file core of ``pointsam predict``: load the source (a checkpoint,
a shipped model, an ``.onnx`` or ``.pt2`` file), read one cloud, predict it
through :func:`~pointsam.engine.predict.predict_cloud`, write the outputs
atomically. :mod:`pointsam.cli.predict` (one file) and
:mod:`pointsam.cli._predict_many` (folders, globs, workers) share it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["describe_columns", "check_one_source", "load_model_arg",
           "memory_estimate", "load_source", "predict_file", "Source"]


def describe_columns(data: Any) -> str:
    """``read 4 columns: x y z remission (N points)``: how the file was read."""
    x = getattr(data, "x", None)
    c = int(x.size(1)) if x is not None else 0
    fields = list(getattr(data, "fields", None) or [])
    names = fields if len(fields) == c else [f"feature{i}" for i in range(c)]
    return (f"read {3 + c} columns: " + " ".join(["x", "y", "z", *names])
            + f" ({data.pos.size(0)} points)")


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
    votes = getattr(args, "votes", None)
    if votes is not None and votes < 1:
        raise ValueError(f"--votes must be >= 1, got {votes}")
    res = predict_cloud(model, task, cfg, data, category=args.category,
                        runner=runner, votes=votes)
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
