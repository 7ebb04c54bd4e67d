r"""A shipped model (:mod:`pointsam.models.pretrained`) as the engine's predictors need it.

:func:`load_pretrained_trained` returns the same ``(model, task, config, meta)``
as :func:`~pointsam.engine.predict.load_trained` does for a checkpoint, so that
``pointsam predict --model NAME`` and ``pointsam viz --model NAME`` run the
same code as with a checkpoint of one's own. :func:`pack_run` writes a
finished training run as a shipped model (the packed file and its card).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pointsam._atomic import atomic_write_bytes, atomic_write_text

from .config import Config, config_from_dict
from .tasks import Task, make_task

__all__ = ["load_pretrained_trained", "pack_run"]


def load_pretrained_trained(name: str) -> tuple[nn.Module, Task, Config, dict[str, Any]]:
    """``(model in eval mode, task, config, meta)`` for a shipped model name.

    Raises:
        ValueError: unknown name (the message lists the shipped models).
    """
    from pointsam.models.pretrained import load_pretrained

    model = load_pretrained(name)
    info = model.pretrained
    cfg = config_from_dict(info.get("config") or {})
    meta = {
        "task": info["task"],
        "num_classes": len(info["classes"]),
        "ignore_index": -1,
        "model_name": info["model"],
        "model_args": dict(info.get("args", {})),
        "class_names": list(info["classes"]),
        "class_colors": info.get("colors"),
        "category_names": [],
        "pretrained": name,
    }
    return model, make_task(meta), cfg, meta


#: What a shipped model expects, by the dataset it was trained on (its card and
#: the file's ``input``).
_INPUT: dict[str, dict[str, str]] = {
    "lidar": {"columns": "x y z (further columns such as intensity ignored)",
              "units": "metres", "frame": "any (sensor or world frame); z up",
              "feature": "height above the local ground, computed inside"},
    "object": {"columns": "x y z", "units": "any (normalised to the unit sphere)",
               "frame": "object frame, z up"},
}
_LIDAR_DATA = ("lidar_frames", "semantickitti", "synthetic_lidar")


def _kitti_colors(n: int) -> list[list[float]]:
    from pointsam.data.kitti import semantic_kitti_config

    cfg = semantic_kitti_config()
    inv = cfg["learning_map_inv"]
    return [[c / 255 for c in reversed(cfg["color_map"][inv[i + 1]])]  # BGR -> RGB
            for i in range(n)]


def _selection_line(summ: dict[str, Any]) -> str:
    """The card's "Selection:" line from a run's summary."""
    sel = summ.get("selection", "best validation score")
    best = summ.get("best") or {}
    if sel.startswith("none") or "note" in best:  # no validation split
        unit = "step" if summ.get("unit") == "step" else "epoch"
        return f"Selection: none: no validation split, the last {unit} is kept."
    return f"Selection: {sel}: " + ", ".join(f"{k} {v}" for k, v in best.items())


def pack_run(run: str | Path, name: str, out: str | Path | None = None,
             *, command: str = "", notes: str = "",
             metrics: dict[str, float] | None = None) -> Path:
    r"""Pack a finished ``pointsam train`` run as a shipped model and its card.

    Reads ``run/best.pt`` (the one checkpoint format) and ``run/summary.json``,
    and writes ``<out>/<name>.pt`` (the :mod:`pointsam.models.pretrained`
    format: weights without optimiser state, float32, or float16 when float32
    would exceed 5 MB; written atomically) and ``<out>/<name>.md`` (the model
    card: use, input, training data and command, selection, test metrics per
    class, classes, licence). ``out`` defaults to the package's
    ``pretrained/`` folder; ``command`` is the training command the card shows;
    ``notes`` (markdown) goes into the card as its "Notes" section (the training
    data's provenance, the frame the model expects, caveats). ``metrics``:
    further measured figures (name -> value, e.g. the cross-drive car IoU of a
    model trained on every labelled frame, whose run has no test split), stored
    with the test metrics and listed in the card.

    Raises:
        FileNotFoundError: no ``best.pt`` or ``summary.json`` in ``run``.
        ValueError: the packed file would exceed 5 MB even in float16.
    """
    from pointsam.models.pretrained import FORMAT, MAX_BYTES, _dir

    from .checkpoint import load_checkpoint

    run = Path(run)
    for f in ("best.pt", "summary.json"):
        if not (run / f).is_file():
            raise FileNotFoundError(f"{run / f} not found: pack a finished run")
    ck = load_checkpoint(run / "best.pt")
    summ = json.loads((run / "summary.json").read_text())
    meta, cfg = ck["meta"], ck["config"]
    lidar = cfg["data"]["name"] in _LIDAR_DATA
    classes = list(meta.get("class_names") or [])
    state: dict[str, Any] = {
        "format": FORMAT, "version": 1, "name": name,
        "model": meta["model_name"], "args": dict(meta.get("model_args") or {}),
        "state_dict": ck["model"], "task": meta["task"], "classes": classes,
        "colors": _kitti_colors(len(classes)) if lidar and len(classes) == 19
        else None,
        "config": {"data": cfg["data"], "train": cfg["train"]},
        "input": _INPUT["lidar" if lidar else "object"],
        "metrics": {"test_" + k: round(v, 4) for k, v in summ["test"].items()
                    if isinstance(v, float)},
    }
    for k, v in (metrics or {}).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"metrics[{k!r}] must be a number, got {v!r}")
        state["metrics"][k] = round(float(v), 4)
    best = summ.get("best", {})
    if isinstance(best.get(meta.get("score_key", "")), float):
        state["metrics"]["val_" + meta["score_key"]] = round(best[meta["score_key"]], 4)
    out = Path(out) if out is not None else _dir()
    path = out / f"{name}.pt"
    data = _serialize(state)  # sized in memory: an oversized file never replaces one
    if len(data) > MAX_BYTES:
        state["state_dict"] = {k: v.half() if v.is_floating_point() else v
                               for k, v in state["state_dict"].items()}
        data = _serialize(state)
    if len(data) > MAX_BYTES:
        raise ValueError(f"{name}: {len(data)} bytes > 5 MB even in float16")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    card = path.with_suffix(".md")
    atomic_write_text(card, _card(name, state, summ,
                                  command or "pointsam train CONFIG", notes))
    return path


def _serialize(state: dict[str, Any]) -> bytes:
    """``torch.save(state)`` as bytes."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _card(name: str, state: dict[str, Any], summ: dict[str, Any], command: str,
          notes: str = "") -> str:
    """The model card of :func:`pack_run` (markdown)."""
    cfg, test = state["config"], summ["test"]
    att = state["args"].get("attention") or "none (plain)"
    params = int(summ.get("num_parameters", 0))
    dtype = next(iter(state["state_dict"].values())).dtype
    classes = state["classes"]
    score = "miou" if state["task"] == "semseg" else "oa"
    lines = [f"# {name}", "",
             f"`{state['model']}`, attention: {att}; {params:,} parameters; task "
             f"{state['task']}, {len(classes)} classes; weights stored as {dtype}.",
             "", "## Use", "",
             f"    pointsam predict --model {name} FILE --out pred.ply",
             f"    pointsam viz --model {name} FILE --out viz_dir --html view.html", "",
             "## Input", ""]
    lines += [f"- {k}: {v}" for k, v in state["input"].items()]
    if state["task"] == "semseg":
        t = cfg["train"]
        votes = int(t.get("votes", 1) or 1)
        lines += [f"- whole scans: {t['voxel_size']} m voxels, chunks of at most "
                  f"{t['chunk_points']} points, every input point labelled"
                  + (f"; {votes} passes turned about z, probabilities averaged "
                     f"(--votes 1: one pass)" if votes > 1 else "")]
    else:
        lines += [f"- {cfg['data']['num_points']} points by farthest-point sampling"]
    d = cfg["data"]
    length = (f"{summ.get('steps_run')} steps" if summ.get("unit") == "step"
              else f"{summ.get('epochs_run')} epochs")
    lines += ["", "## Training data and command", "",
              f"Dataset `{d['name']}` ({json.dumps(d.get('args') or {})}); "
              f"{length}, {summ.get('train_time_s') or 0:.0f} s of training.", "",
              f"    {command}", f"    # then: pointsam.engine.pretrained.pack_run(RUN, "
              f"\"{name}\")", "",
              _selection_line(summ), "",
              "## Metrics", ""]
    if isinstance(test.get(score), float):
        lines += [f"Test split, evaluated once: **{score} "
                  f"{100 * float(test[score]):.1f}%**"
                  + (f", OA {100 * float(test['oa']):.1f}%" if "oa" in test and
                     score != "oa" else "")
                  + (f", mAcc {100 * float(test['macc']):.1f}%" if "macc" in test
                     else "") + "."]
    else:
        lines += ["No test split: the run trained on every labelled frame it "
                  "had (the Notes say where it was checked)."]
    extra = {k: v for k, v in state["metrics"].items()
             if not k.startswith(("test_", "val_"))}
    if extra:
        lines += [""] + [f"- {k}: {v}" for k, v in extra.items()]
    iou = test.get("iou")
    if isinstance(iou, list) and len(iou) == len(classes):
        lines += ["", "| class | IoU % |", "|---|---:|"]
        lines += [f"| {c} | " + ("absent |" if v is None or v != v else f"{100 * v:.1f} |")
                  for c, v in zip(classes, iou)]
    if notes:
        lines += ["", "## Notes", "", notes.strip()]
    lines += ["", "## Classes", "", ", ".join(f"{i} {c}" for i, c in
                                              enumerate(classes)), "", "## Licence", ""]
    if d["name"] in _LIDAR_DATA:
        lines += ["Weights trained on SemanticKITTI data: **CC BY-NC-SA 4.0** "
                  "(SemanticKITTI; KITTI is CC BY-NC-SA 3.0). **Research / "
                  "non-commercial use only**, attribution, share-alike. Cite Behley "
                  "et al., \"SemanticKITTI\", ICCV 2019, and Geiger et al., KITTI, "
                  "CVPR 2012."]
    else:
        lines += ["Trained on ModelNet (Princeton): **academic research only, "
                  "non-commercial**. Cite Wu et al., \"3D ShapeNets\", CVPR 2015."]
    return "\n".join(lines) + "\n"
