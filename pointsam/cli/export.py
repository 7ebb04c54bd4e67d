"""``pointsam export (CHECKPOINT | --model NAME) --format onnx|pt2 --out FILE
[--with-attention] [--end-to-end --num-points N]``.

The file also records the run's prediction settings
(:func:`~pointsam.engine.predict.prediction_record`: the config's evaluation
transform, the voxel and chunk sizes of whole scans, the classes), so
``pointsam predict --onnx`` / ``--pt2`` prepares a cloud exactly as ``pointsam
predict CHECKPOINT`` does."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

_SUFFIX = {"onnx": ".onnx", "pt2": ".pt2"}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``export`` sub-command to an ``argparse`` sub-parser set."""
    pr = subparsers.add_parser(
        "export", help="export a trained model's network to ONNX or torch.export")
    pr.add_argument("checkpoint", nargs="?", default=None,
                    help="a checkpoint written by pointsam train")
    pr.add_argument("--model", default=None, metavar="NAME",
                    help="a shipped trained model instead of a checkpoint "
                    "(`pointsam models` lists them)")
    pr.add_argument("--format", choices=sorted(_SUFFIX), default="onnx",
                    help="onnx (dynamo exporter; run with ONNX Runtime, "
                    "`pointsam predict --onnx`) or pt2 (a torch.export program)")
    pr.add_argument("--out", required=True, help="output .onnx / .pt2 file")
    pr.add_argument("--with-attention", action="store_true",
                    help="also output every recorded attention weight "
                    "(outputs named attn.<module>.<weight>)")
    pr.add_argument("--end-to-end", action="store_true",
                    help="put the geometry plan (FPS, kNN, ball query, "
                    "interpolation weights) in the graph too, as dense torch ops: "
                    "the inputs are then the raw clouds pos [B, N, 3] (B any, N "
                    "fixed by --num-points), and ONNX Runtime alone runs it")
    pr.add_argument("--num-points", type=int, default=None, metavar="N",
                    help="with --end-to-end: the points per cloud (static: every "
                    "stage's FPS sample count derives from it), e.g. 1024 for "
                    "ModelNet")
    pr.set_defaults(func=run)
    return pr


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint, export its network, print the inputs and outputs."""
    from pointsam.engine.predict import RECORD_KEY, prediction_record
    from pointsam.export import export_onnx, export_program, save_program

    from .predict import load_model_arg

    out = Path(args.out)
    if out.suffix.lower() != _SUFFIX[args.format]:
        raise ValueError(f"--out {args.out}: a {args.format} export is written as "
                         f"*{_SUFFIX[args.format]}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--out {args.out}: folder {out.parent} does not exist")
    num_points = getattr(args, "num_points", None)
    if getattr(args, "end_to_end", False):
        if num_points is None or num_points < 1:
            raise ValueError("--end-to-end needs --num-points N (>= 1): the points "
                             "per cloud the graph takes, e.g. 1024")
    elif num_points is not None:
        raise ValueError("--num-points is the cloud size of an --end-to-end "
                         "export; add --end-to-end (a network-only export takes "
                         "any number of points)")
    model, task, cfg, meta = load_model_arg(args)
    name, margs = meta["model_name"], dict(meta.get("model_args", {}))
    extra: dict[str, Any] = {k: meta[k] for k in ("class_names", "category_names",
                                                  "class_colors", "pretrained")
                             if meta.get(k)}
    # how predict prepares a cloud: the same for --onnx / --pt2
    extra[RECORD_KEY] = prediction_record(cfg, meta, num_points=num_points)
    if num_points is not None and task.name != "semseg" \
            and num_points != cfg.data.num_points:
        print(f"note: the model was evaluated on clouds of data.num_points = "
              f"{cfg.data.num_points}; this end-to-end graph takes {num_points}, "
              f"and predicting with it samples clouds to {num_points} points")
    elif num_points is not None and task.name == "semseg":
        print(f"note: an end-to-end segmentation graph labels a scan of exactly "
              f"{num_points} points in one pass (no voxel grid, no chunks)")
    if args.format == "onnx":
        export_onnx(model, out, with_attention=args.with_attention, model_name=name,
                    model_args=margs, extra_meta=extra, num_points=num_points)
        import onnx

        proto = onnx.load(str(out), load_external_data=False)
        inputs = [i.name for i in proto.graph.input]
        outputs = [o.name for o in proto.graph.output]
    else:
        ep, info = export_program(model, with_attention=args.with_attention,
                                  num_points=num_points)
        info.update(model_name=name, model_args=margs, **extra)
        save_program(ep, info, out)
        inputs, outputs = info["inputs"], info["outputs"]
    plan = (f"; end to end, clouds of {num_points} points, any number of them"
            if num_points else " and the plan")
    print(f"wrote {out} ({name}, {args.format}): {len(inputs)} inputs "
          f"(pos{', x' if 'x' in inputs else ''}"
          f"{', category' if 'category' in inputs else ''}{plan}), "
          f"outputs: {', '.join(outputs)}")
    return 0
