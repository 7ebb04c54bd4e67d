r"""LiDAR segmentation on real frames: whole-frame evaluation and the crop recipe.

:func:`evaluate_scan` labels **every point** of a scan with
:func:`~pointsam.engine.inference.predict_scan` (voxel subsampling, chunks of
at most ``chunk_points``, scores carried back to each original point; peak
memory linear in N) and returns the per-class IoU

.. math::
    \mathrm{IoU}_c = \frac{TP_c}{TP_c + FP_c + FN_c},

the mean over the classes present in the ground truth, the overall accuracy,
the confusion matrix (rows true, columns predicted; unlabeled points left out)
and the largest off-diagonal entries.

:func:`train_lidar` is the recipe of ``train/lidar/*.yaml``: random cylinder
crops of one real frame (minus a held-out region) mixed with SyntheticLidar
scenes, model selection on the held-out region of that frame, and one final
evaluation of the best model on the test frame.

:func:`run_lidar` is the recipe as a run of ``pointsam train`` (and of a
``pointsam sweep`` child): a config is a recipe config when it has
``data.frames`` or ``train.steps`` (:func:`is_lidar_recipe`; no trainer config
has either key). It takes the run directory's lock, refuses to overwrite a
previous run without ``overwrite``, trains, and writes ``summary.json`` in the
shape :mod:`~pointsam.engine.sweep_report` reads (task ``semseg``, test mIoU and
OA as fractions, the step chosen on validation).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pointsam.data import SyntheticLidar
from pointsam.data.kitti import class_names as class_names_semantickitti
from pointsam.data.lidar_frames import (
    NUM_LEARNING_CLASSES,
    LidarCrops,
    class_weights,
    map_synthetic_labels,
    read_learning_frame,
    split_region,
)
from pointsam.models import create_model

from .checkpoint import FORMAT as CHECKPOINT_FORMAT
from .checkpoint import VERSION as CHECKPOINT_VERSION
from .checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from .config import ConfigError, config_diff, set_dotted
from .inference import predict_scan

__all__ = ["evaluate_scan", "confusion_matrix", "scores_from_confusion",
           "train_lidar", "format_table", "check_lidar_config", "LIDAR_CONFIG_KEYS",
           "is_lidar_recipe", "load_lidar_config", "check_lidar_build", "run_lidar",
           "lidar_summary", "LIDAR_RUN_FILES"]

#: The keys a ``train/lidar/*.yaml`` config may hold, per section.
LIDAR_CONFIG_KEYS = {
    "model": {"name", "args"},
    "data": {"frames", "train_frame", "test_frame", "holdout", "synthetic_scenes",
             "seed", "real_fraction", "radius", "max_points", "voxel_size"},
    "train": {"steps", "crops_per_step", "lr", "weight_decay", "warmup", "eval_every",
              "seed", "num_threads", "time_budget_s", "chunk_points", "out_dir"},
}


def check_lidar_config(cfg: Any) -> None:
    """Raise ``ValueError`` naming any unknown section or key, or a missing one."""
    if not isinstance(cfg, dict):
        raise ValueError(f"a LiDAR config is a mapping, got {type(cfg).__name__}")
    for sec, body in cfg.items():
        if sec not in LIDAR_CONFIG_KEYS:
            raise ValueError(f"unknown section {sec!r}; valid: "
                             f"{', '.join(LIDAR_CONFIG_KEYS)}")
        bad = set(body or {}) - LIDAR_CONFIG_KEYS[sec]
        if bad:
            raise ValueError(f"unknown key(s) {', '.join(sorted(bad))} in {sec!r}; "
                             f"valid: {', '.join(sorted(LIDAR_CONFIG_KEYS[sec]))}")
    for sec, key in (("model", "name"), ("data", "frames"), ("data", "train_frame"),
                     ("data", "test_frame"), ("data", "holdout"), ("train", "steps"),
                     ("train", "out_dir")):
        if key not in (cfg.get(sec) or {}):
            raise ValueError(f"missing {sec}.{key}")
    _check_values(cfg)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


#: Value rules: key -> (kind, lower bound, bound inclusive). "int" or "num".
_RULES: dict[str, tuple[str, float, bool]] = {
    "train.steps": ("int", 1, True), "train.crops_per_step": ("int", 1, True),
    "train.eval_every": ("int", 1, True), "train.warmup": ("int", 0, True),
    "train.seed": ("int", 0, True), "train.num_threads": ("int", 0, True),
    "train.chunk_points": ("int", 1, True), "train.lr": ("num", 0, False),
    "train.weight_decay": ("num", 0, True), "train.time_budget_s": ("num", 0, True),
    "data.synthetic_scenes": ("int", 0, True), "data.seed": ("int", 0, True),
    "data.max_points": ("int", 1, True), "data.radius": ("num", 0, False),
    "data.voxel_size": ("num", 0, True), "data.real_fraction": ("num", 0, True),
}


def _check_values(cfg: dict[str, Any]) -> None:
    """The value checks of :func:`check_lidar_config` (types and ranges)."""
    for key, (kind, lo, incl) in _RULES.items():
        sec, name = key.split(".")
        body = cfg.get(sec) or {}
        if name not in body:
            continue
        v = body[name]
        ok = isinstance(v, int) and not isinstance(v, bool) if kind == "int" \
            else _is_num(v)
        if not ok:
            what = "an integer" if kind == "int" else "a number"
            raise ValueError(f"{key}: expected {what}, got {v!r}")
        if v < lo or (v == lo and not incl):
            raise ValueError(f"{key} must be {'>=' if incl else '>'} {lo:g}, got {v!r}")
    if cfg["data"].get("real_fraction", 0) > 1:
        raise ValueError(f"data.real_fraction must be in [0, 1], got "
                         f"{cfg['data']['real_fraction']!r}")
    h = cfg["data"]["holdout"]
    if not (isinstance(h, dict) and set(h) == {"axis", "below"}
            and h["axis"] in (0, 1, 2) and not isinstance(h["axis"], bool)
            and _is_num(h["below"])):
        raise ValueError("data.holdout must be {axis: 0|1|2, below: metres} (the "
                         f"held-out region is pos[:, axis] < below), got {h!r}")
    for key in ("data.frames", "data.train_frame", "data.test_frame", "train.out_dir",
                "model.name"):
        sec, name = key.split(".")
        if not isinstance(cfg[sec][name], str) or not cfg[sec][name]:
            raise ValueError(f"{key}: expected a non-empty string, got "
                             f"{cfg[sec][name]!r}")
    if not isinstance(cfg["model"].get("args") or {}, dict):
        raise ValueError(f"model.args must be a mapping, got {cfg['model']['args']!r}")


def is_lidar_recipe(d: Any) -> bool:
    """Is the YAML mapping ``d`` a recipe config (``train/lidar/*.yaml``)?

    The rule: its ``data`` section has ``frames`` or its ``train`` section has
    ``steps``. No trainer config (:class:`~pointsam.engine.config.Config`) has
    either key, so a recipe config with a typo elsewhere is still recognised
    and gets the recipe's error, not the trainer's.

    Example:
        >>> is_lidar_recipe({"data": {"frames": "x"}}), is_lidar_recipe({"train": {}})
        (True, False)
    """
    if not isinstance(d, dict):
        return False
    data, train = d.get("data"), d.get("train")
    return ((isinstance(data, dict) and "frames" in data)
            or (isinstance(train, dict) and "steps" in train))


def _read_yaml(path: str | Path) -> Any:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e


def is_lidar_recipe_file(path: str | Path) -> bool:
    """:func:`is_lidar_recipe` of a YAML file; False when it cannot be read
    (the trainer's loader then reports why)."""
    try:
        return is_lidar_recipe(_read_yaml(path))
    except (OSError, ValueError):
        return False


def load_lidar_config(path: str | Path, overrides: Sequence[str] = ()
                      ) -> dict[str, Any]:
    """A recipe config from YAML plus ``key=value`` overrides, checked.

    Override keys are dotted paths of any depth (``train.steps=2``,
    ``data.holdout.below=-100``, ``model.args.attention=axial``); values are
    parsed as YAML. The result passes :func:`check_lidar_config`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConfigError: not YAML, not a recipe config, an unknown or missing key or
            a bad value (the message starts with the path).
    """
    import copy

    d = _read_yaml(path)
    try:
        if not is_lidar_recipe(d):
            raise ValueError("not a LiDAR recipe config (it has neither data.frames "
                             "nor train.steps)")
        d = copy.deepcopy(d)
        for item in overrides:
            key, eq, raw = item.partition("=")
            parts = key.strip().split(".")
            if not eq or len(parts) < 2 or not all(parts):
                raise ValueError(f"override {item!r} is not section.key=value")
            set_dotted(d, parts, raw, item)
        check_lidar_config(d)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None
    return d


def check_lidar_build(cfg: dict[str, Any]) -> str:
    """What a run needs before it starts: the frames' files and the model.

    Checks that ``data.frames`` holds ``points/<id>.npy`` and ``labels/<id>.npy``
    for the train and the test frame, and builds the model (so a bad
    ``model.args`` fails here, not after the synthetic scenes). Returns the
    task, ``"semseg"``.

    Raises:
        FileNotFoundError: a frame file is missing (the message names it).
        ValueError: the model does not build with ``model.args``.
    """
    check_lidar_config(cfg)
    root = Path(cfg["data"]["frames"])
    for fid in dict.fromkeys((cfg["data"]["train_frame"], cfg["data"]["test_frame"])):
        for sub in ("points", "labels"):
            f = root / sub / f"{fid}.npy"
            if not f.is_file():
                raise FileNotFoundError(
                    f"data.frames: {f} not found (a relative data.frames is read from "
                    f"the current folder, {Path.cwd()}; the configs in train/lidar/ "
                    "expect to be run from the repository root)")
    args = {"num_classes": NUM_LEARNING_CLASSES, **(cfg["model"].get("args") or {})}
    try:
        create_model(cfg["model"]["name"], **args)
    except TypeError as e:
        raise ValueError(f"model {cfg['model']['name']!r} does not take "
                         f"model.args {cfg['model'].get('args')}: {e}") from None
    return "semseg"


def confusion_matrix(target: Tensor, pred: Tensor, num_classes: int) -> Tensor:
    """``[C, C]`` int64 counts (row = true class); targets < 0 are left out."""
    keep = target >= 0
    t, p = target[keep].long(), pred[keep].long()
    return torch.bincount(t * num_classes + p, minlength=num_classes**2).view(
        num_classes, num_classes)  # [C, C]


def scores_from_confusion(conf: Tensor, names: Sequence[str] | None = None,
                          top: int = 8) -> dict[str, Any]:
    """Per-class IoU, mIoU over present classes, OA and the top confusions.

    Example:
        >>> s = scores_from_confusion(torch.tensor([[3, 1, 0], [0, 4, 0], [0, 0, 0]]))
        >>> s["iou"][:2], s["present"], round(s["miou"], 3), s["oa"]
        ([0.75, 0.8], [0, 1], 0.775, 0.875)
    """
    conf = conf.double()
    c = conf.size(0)
    names = list(names) if names is not None else [str(i) for i in range(c)]
    tp = conf.diag()
    support = conf.sum(1)
    denom = support + conf.sum(0) - tp
    iou = torch.where(denom > 0, tp / denom.clamp(min=1), torch.zeros_like(tp))
    present = (support > 0).nonzero().view(-1).tolist()
    off = conf.clone()
    off.fill_diagonal_(0)
    flat = off.flatten().argsort(descending=True)[:top]
    confusions = [
        {"true": names[int(i) // c], "pred": names[int(i) % c],
         "points": int(off.flatten()[i]),
         "share_of_true": float(off.flatten()[i] / support[int(i) // c])}
        for i in flat if off.flatten()[i] > 0
    ]
    total = float(support.sum())
    return {
        "iou": [round(float(v), 4) for v in iou],
        "present": present,
        "miou": float(iou[present].mean()) if present else float("nan"),
        "oa": float(tp.sum() / total) if total else float("nan"),
        "support": [int(v) for v in support],
        "confusions": confusions,
    }


@torch.no_grad()
def evaluate_scan(model: nn.Module, data: Any, *, voxel_size: float = 0.1,
                  chunk_points: int = 8192, num_classes: int = NUM_LEARNING_CLASSES,
                  names: Sequence[str] | None = None) -> dict[str, Any]:
    """Scores of ``model`` on every point of one labelled scan (``pos``, ``y``).

    Returns:
        :func:`scores_from_confusion`'s dict plus ``confusion`` (a list of
        lists), ``points`` and ``seconds``.
    """
    was = model.training
    model.eval()
    t0 = time.perf_counter()
    prob = predict_scan(model, data, voxel_size=voxel_size, chunk_points=chunk_points)
    pred = prob.argmax(1)  # [N]
    model.train(was)
    conf = confusion_matrix(data.y, pred, num_classes)
    out = scores_from_confusion(conf, names)
    out.update(confusion=conf.tolist(), points=int(data.pos.size(0)),
               seconds=round(time.perf_counter() - t0, 2))
    return out


def _synthetic_scans(n: int, seed: int) -> list[Any]:
    ds = SyntheticLidar(num_samples=n, split="train", seed=seed)
    out = []
    for i in range(n):
        d = ds[i]
        d.y = map_synthetic_labels(d.y)
        del d.x  # no intensity: the real frames have none
        out.append(d)
    return out


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def train_lidar(cfg: dict[str, Any], *, log: Callable[[str], None] = print,
                resume: bool = False) -> dict[str, Any]:
    """Train, select on the held-out region, evaluate the test frame once.

    ``cfg`` is the dict of a ``train/lidar/*.yaml`` file (sections ``model``,
    ``data``, ``train``). Writes ``best.pt``, ``log.csv`` and ``metrics.json``
    into ``train.out_dir`` and returns the metrics.

    At every held-out evaluation before the last step the run writes ``last.pt``
    (atomically; model, AdamW state, step, the best weights so far, the log rows,
    the training seconds so far and the RNG states). With ``resume`` and a
    ``last.pt`` in ``train.out_dir`` the run continues from that step; crop ``i``
    is drawn from its own generator seeded by ``(train.seed, i)``, so a resumed
    run equals an uninterrupted one on the CPU. The time budget counts the
    seconds of every attempt.
    """
    check_lidar_config(cfg)
    m, d, t = cfg["model"], cfg["data"], cfg["train"]
    torch.manual_seed(int(t.get("seed", 0)))
    if t.get("num_threads"):
        torch.set_num_threads(int(t["num_threads"]))
    out_dir = Path(t["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(d["frames"])
    names = class_names_semantickitti()

    def frame(fid: str) -> Any:
        return read_learning_frame(root / "points" / f"{fid}.npy",
                                   root / "labels" / f"{fid}.npy")

    rest, held = split_region(frame(d["train_frame"]), int(d["holdout"]["axis"]),
                              float(d["holdout"]["below"]))
    t0 = time.perf_counter()
    synth = _synthetic_scans(int(d.get("synthetic_scenes", 0)), int(d.get("seed", 0)))
    log(f"{len(synth)} synthetic scenes in {time.perf_counter() - t0:.0f} s; "
        f"train region {rest.pos.size(0)} points, held-out {held.pos.size(0)}")
    steps, cps = int(t["steps"]), int(t.get("crops_per_step", 2))
    crops = LidarCrops([rest], synth, num_samples=steps * cps,
                       real_fraction=float(d.get("real_fraction", 0.5)),
                       radius=float(d.get("radius", 20.0)),
                       max_points=int(d.get("max_points", 8192)),
                       voxel_size=float(d.get("voxel_size", 0.1)),
                       seed=int(t.get("seed", 0)))
    counts = crops.class_counts()
    weights = class_weights(counts)
    never = [names[c] for c in range(NUM_LEARNING_CLASSES) if counts[c] == 0]
    log(f"classes never in training: {', '.join(never) or 'none'}")
    args = {"num_classes": NUM_LEARNING_CLASSES, **(m.get("args") or {})}
    model = create_model(m["name"], **args)
    opt = torch.optim.AdamW(model.parameters(), lr=float(t.get("lr", 0.004)),
                            weight_decay=float(t.get("weight_decay", 1e-4)))
    ev = {"voxel_size": float(d.get("voxel_size", 0.1)),
          "chunk_points": int(t.get("chunk_points", d.get("max_points", 8192)))}
    budget = float(t.get("time_budget_s", 0) or 0)
    every = int(t.get("eval_every", 50))
    best: dict[str, Any] = {"miou": -1.0}
    rows: list[dict[str, Any]] = []
    first, spent = 0, 0.0
    last_path = out_dir / "last.pt"
    if resume and last_path.is_file():
        ck = load_checkpoint(last_path)
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"])
        first, spent, rows, best = (int(ck["step"]), float(ck["train_seconds"]),
                                    list(ck["rows"]), dict(ck["best"]))
        log(f"resuming from step {first} of {steps} ({spent:.0f} s trained, best "
            f"val mIoU {best['miou']:.3f} at step {best['step']})")
    start = time.perf_counter() - spent
    from torch_geometric.data import Batch

    model.train()
    step = first
    for step in range(first, steps):
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, steps, float(t.get("lr", 0.004)),
                             int(t.get("warmup", 20)))
        batch = Batch.from_data_list([crops[step * cps + j] for j in range(cps)])
        logits = model(batch)  # [N, 19]
        loss = F.cross_entropy(logits, batch.y, weight=weights, ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        elapsed = time.perf_counter() - start
        over = budget > 0 and elapsed > budget
        row: dict[str, Any] = {"step": step + 1, "loss": round(float(loss.detach()), 4),
                               "seconds": round(elapsed, 1)}
        if (step + 1) % every == 0 or step + 1 == steps or over:
            val = evaluate_scan(model, held, names=names, **ev)
            row["val_miou"] = round(val["miou"], 4)
            if val["miou"] > best["miou"]:
                best = {"miou": val["miou"], "step": step + 1, "val": val,
                        "state": {k: v.clone() for k, v in model.state_dict().items()}}
            log(f"step {step + 1}/{steps} loss {row['loss']:.3f} val mIoU "
                f"{val['miou']:.3f} ({elapsed:.0f} s)")
        rows.append(row)
        if "val_miou" in row and step + 1 < steps and not over:
            save_checkpoint({
                "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                "recipe": "lidar", "config": cfg, "step": step + 1,
                "state_dict": model.state_dict(), "optimizer": opt.state_dict(),
                "rng": get_rng_state(), "best": best, "rows": rows,
                "train_seconds": time.perf_counter() - start}, last_path)
        if over:
            log(f"time budget {budget:.0f} s reached at step {step + 1}")
            break
    train_s = time.perf_counter() - start
    model.load_state_dict(best["state"])
    test = evaluate_scan(model, frame(d["test_frame"]), names=names, **ev)
    log(f"test frame {d['test_frame']}: mIoU {test['miou']:.3f} OA {test['oa']:.3f}")
    params = sum(p.numel() for p in model.parameters())
    metrics = {
        "model": m["name"], "args": args, "params": params,
        "steps_done": step + 1, "train_seconds": round(train_s, 1),
        "best_step": best["step"], "selection": "mIoU on the held-out region of "
        f"{d['train_frame']} ({held.pos.size(0)} points)",
        "val": {k: v for k, v in best["val"].items() if k != "confusion"},
        "test_frame": d["test_frame"], "test": test, "classes": list(names),
        "never_in_training": never, "train_class_points": counts.tolist(),
        "inference": ev, "config": cfg,
    }
    save_checkpoint({
        "format": "pointsam-lidar", "model": m["name"], "args": args,
        "state_dict": best["state"], "classes": list(names), "inference": ev,
        "metrics": {"test_miou": test["miou"], "test_oa": test["oa"],
                    "val_miou": best["miou"]}}, out_dir / "best.pt")
    with open(out_dir / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["step", "loss", "seconds", "val_miou"])
        w.writeheader()
        w.writerows(rows)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
    return metrics


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """Markdown: one column per run, per-class IoU rows, mIoU/OA, and confusions."""
    if not results:
        return "(no results)"
    names = results[0]["classes"]
    heads = [r.get("label", r["model"]) for r in results]
    lines = ["| class | test points | " + " | ".join(heads) + " |",
             "|---|---:|" + "---:|" * len(heads)]
    sup = results[0]["test"]["support"]
    for c, n in enumerate(names):
        if sup[c] == 0:
            continue
        cells = [f"{100 * r['test']['iou'][c]:.1f}" for r in results]
        never = " (never in training)" if n in results[0]["never_in_training"] else ""
        lines.append(f"| {n}{never} | {sup[c]} | " + " | ".join(cells) + " |")
    for key, label in (("miou", "**mIoU** (classes present)"), ("oa", "OA")):
        lines.append(f"| {label} | | " + " | ".join(
            f"{100 * r['test'][key]:.1f}" for r in results) + " |")
    lines.append("| val mIoU (selection) | | " + " | ".join(
        f"{100 * r['val']['miou']:.1f}" for r in results) + " |")
    lines.append("| params | | " + " | ".join(f"{r['params']:,}" for r in results)
                 + " |")
    lines.append("| steps / train s | | " + " | ".join(
        f"{r['steps_done']} / {r['train_seconds']:.0f}" for r in results) + " |")
    out = "\n".join(lines) + "\n"
    for r, h in zip(results, heads):
        top = ", ".join(f"{c['true']} -> {c['pred']} {100 * c['share_of_true']:.0f}%"
                        f" ({c['points']})" for c in r["test"]["confusions"][:6])
        out += f"\nTop confusions, {h} (true -> predicted, share of the true class): {top}\n"
    return out


#: The outputs of a recipe run (what a new run without ``overwrite`` refuses to
#: replace, and what ``overwrite`` or a restarted ``resume`` removes first).
LIDAR_RUN_FILES = ("best.pt", "last.pt", "log.csv", "metrics.json", "summary.json")

#: Keys a finished run may differ in from the config of a ``resume``.
_FREE_KEYS = frozenset({"train.out_dir", "train.num_threads", "train.time_budget_s"})


def lidar_summary(cfg: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """The ``summary.json`` of a recipe run, from :func:`train_lidar`'s metrics.

    The keys :mod:`~pointsam.engine.sweep_report` reads: ``task`` (``semseg``),
    ``test`` (``miou``, ``oa``: fractions, every point of the test frame),
    ``config``, ``num_parameters``, ``train_time_s``, ``time_budget_s``,
    ``unit`` (``"step"``: the recipe counts optimiser steps, not epochs),
    ``best["step"]`` (the step chosen on the held-out region), ``steps_run`` of
    ``steps_planned`` and ``stopped_by_time_budget``.
    """
    from .logger import environment, package_versions

    t = cfg["train"]
    steps, done = int(t["steps"]), int(metrics["steps_done"])
    test = metrics["test"]
    return {
        "config": cfg,
        "seed": int(t.get("seed", 0)),
        "task": "semseg",
        "recipe": "lidar",
        "model": metrics["model"],
        "model_args": metrics["args"],
        "num_parameters": int(metrics["params"]),
        "selection": metrics["selection"],
        "unit": "step",
        "best": {"step": int(metrics["best_step"]), "miou": metrics["val"]["miou"],
                 "oa": metrics["val"]["oa"]},
        "test": {"split": f"frame {metrics['test_frame']}", "evaluated_once": True,
                 **{k: test[k] for k in ("miou", "oa", "iou", "present", "support",
                                         "points", "seconds")}},
        "train_time_s": float(metrics["train_seconds"]),
        "time_budget_s": float(t.get("time_budget_s", 0) or 0),
        "steps_run": done,
        "steps_planned": steps,
        "stopped_by_time_budget": done < steps,
        "never_in_training": metrics["never_in_training"],
        "versions": package_versions(),
        "machine": environment(),
        "checkpoint": str(Path(t["out_dir"]) / "best.pt"),
    }


def _finished_summary(out: Path, cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The valid ``summary.json`` of a finished run of ``cfg`` in ``out``, if any.

    Raises:
        RunDirError: the folder holds a finished run of another config.
    """
    try:
        s = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    if not (isinstance(s, dict) and isinstance(s.get("config"), dict)
            and isinstance(s.get("test"), dict)):
        return None
    _refuse_other_config(out, "a finished run", s["config"], cfg)
    return s


def _refuse_other_config(out: Path, what: str, old: dict[str, Any],
                         cfg: dict[str, Any]) -> None:
    """Raise RunDirError when ``old`` differs from ``cfg`` outside :data:`_FREE_KEYS`."""
    from .rundir import RunDirError

    diff = [f"{k}: {a!r} there, {b!r} now"
            for k, a, b in config_diff(old, cfg, _FREE_KEYS)]
    if diff:
        raise RunDirError(f"{out} holds {what} of another config "
                          f"({'; '.join(diff)}); replace it with --overwrite or "
                          "choose another train.out_dir")


def _resumable(out: Path, cfg: dict[str, Any], log: Callable[[str], None]) -> bool:
    """Does ``out/last.pt`` hold an unfinished run of ``cfg`` to continue?

    An unreadable ``last.pt`` is reported and not used (the run restarts).

    Raises:
        RunDirError: it holds an unfinished run of another config.
    """
    from .checkpoint import CheckpointError

    path = out / "last.pt"
    if not path.is_file():
        return False
    try:
        ck = load_checkpoint(path)
    except CheckpointError as e:
        log(f"cannot resume from {path} ({e})")
        return False
    if ck.get("recipe") != "lidar" or not isinstance(ck.get("config"), dict):
        log(f"cannot resume from {path}: not a LiDAR recipe checkpoint")
        return False
    _refuse_other_config(out, "an unfinished run", ck["config"], cfg)
    return True


def run_lidar(cfg: dict[str, Any], *, resume: bool = False, overwrite: bool = False,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """The recipe as a run: lock ``train.out_dir``, train, write ``summary.json``.

    The run directory follows :mod:`~pointsam.engine.rundir`: it must be
    writable, it is locked for the run (a second process is refused), and a new
    run into a folder holding a previous run's outputs (:data:`LIDAR_RUN_FILES`)
    is refused unless ``overwrite``, which removes them first.

    ``resume``: a finished run of the same config (a valid ``summary.json``;
    ``train.out_dir``, ``train.num_threads`` and ``train.time_budget_s`` may
    differ) is returned as it is, without training; an unfinished one (killed
    before its summary) continues from its ``last.pt`` (the last held-out
    evaluation, see :func:`train_lidar`), or restarts cleanly from step 0 when
    it has none (killed before its first evaluation) or it is unreadable. A run
    of another config, finished or not, is refused. ``last.pt`` is removed once
    ``summary.json`` is written.

    Returns:
        The summary (:func:`lidar_summary`), also written to ``summary.json``.

    Raises:
        ValueError: a bad config (:func:`check_lidar_config`), or both
            ``resume`` and ``overwrite``.
        RunDirError: the folder is not writable, is in use, or holds a run that
            may not be replaced.
    """
    from .rundir import acquire_lock, check_fresh, check_writable

    if resume and overwrite:
        raise ValueError("--resume continues the run in OUT_DIR and --overwrite "
                         "replaces it: give one of them")
    check_lidar_config(cfg)
    out = check_writable(cfg["train"]["out_dir"])
    lock = acquire_lock(out)
    try:
        if resume:
            done = _finished_summary(out, cfg)
            if done is not None:
                log(f"{out} holds a finished run of this config: nothing to resume")
                return done
            cont = _resumable(out, cfg, log)
            found = check_fresh(out, resume=False, overwrite=True, files=[
                f for f in LIDAR_RUN_FILES if not (cont and f == "last.pt")])
            if not cont and found:
                log(f"no last.pt to continue: restarting from step 0 "
                    f"(removed the unfinished run's {', '.join(found)})")
        else:
            cont = False
            check_fresh(out, resume=False, overwrite=overwrite, files=LIDAR_RUN_FILES)
        metrics = train_lidar(cfg, log=log, resume=cont)
        summary = lidar_summary(cfg, metrics)
        tmp = out / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(out / "summary.json")
        (out / "last.pt").unlink(missing_ok=True)
        return summary
    finally:
        lock.release()
