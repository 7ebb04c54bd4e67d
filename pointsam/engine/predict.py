r"""Load a trained checkpoint and predict on one cloud: the one prediction path.

:func:`predict_cloud` is the only place where a cloud is prepared for a
trained model, whatever runs the network: the eager model, an ONNX file in
ONNX Runtime or a ``.pt2`` program (:func:`pointsam.export.load_exported`
gives their ``runner``). Every preparation step comes from the run's
:class:`~pointsam.engine.config.Config` (the evaluation transform of
:func:`~pointsam.engine.builders.build_transform`), which an export records
with :func:`prediction_record`:

- ``cls``: the cloud normalised and sampled as in evaluation; returns the class
  and the softmax probabilities.
- ``partseg``: normalised; clouds larger than the training size are sampled by
  FPS and the labels carried back to every point by its nearest sample; the
  prediction is restricted to the category's parts (``category`` required).
- ``semseg``: :func:`~pointsam.engine.inference.predict_scan` with the config's
  ``voxel_size`` and ``chunk_points`` (default chunk: ``data.num_points``). A
  multi-scan model (``pointnet2_lite_temporal_lidarseg`` with ``num_past > 0``)
  is refused: one file is one scan.

Before ``cls`` and ``partseg``, :func:`warn_out_of_distribution` warns when the
cloud is far outside what an object model was trained on (a LiDAR scene).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._guards import drop_unused_features
from .checkpoint import load_checkpoint, load_weights
from .config import Config, config_from_dict
from .tasks import PartSegTask, Task, make_task

__all__ = ["load_trained", "predict_cloud", "min_points", "prediction_record",
           "from_prediction_record", "scene_like", "warn_out_of_distribution"]

#: metadata key of :func:`prediction_record` in an exported file
RECORD_KEY = "prediction"


def min_points(model: nn.Module) -> int:
    """The fewest distinct points an answer of ``model`` means anything on: its
    declared :attr:`~pointsam.models.PointModel.min_points` (1 for a model that
    is not a :class:`~pointsam.models.PointModel`)."""
    from pointsam.models import PointModel

    return model.min_points if isinstance(model, PointModel) else 1


def scene_like(pos: torch.Tensor) -> dict[str, float] | None:
    r"""The statistics that mark ``pos`` [N, 3] (z up, any unit) as a LiDAR
    scene rather than one object, or ``None`` when it is not one.

    Unit-free, so that ModelNet shapes in raw units (PCD files up to
    :math:`\pm 10^5`, OFF meshes up to :math:`\pm 1235`) pass. With
    :math:`z_{1\%}` the 1st-percentile height, :math:`L` the largest
    1st-99th percentile extent, :math:`\tilde p` the coordinate-wise median
    point and :math:`r_i = \|p_i - \tilde p\|`, a scene has both

    .. math::
        \mathrm{ground} = \tfrac{1}{N}\,\big|\{i : z_i - z_{1\%} < 0.02 L\}\big|
        \ge 0.5, \qquad
        \mathrm{centre} = \mathrm{median}_i\, r_i \,/\, r_{99\%} < 0.3

    (most points on the ground plane, and the density falling with range from a
    sensor in the middle). On the shared data, LiDAR scans (KITTI, nuScenes,
    SemanticKITTI) give ground 0.55-0.87 and centre 0.10-0.22; the 4,899
    ModelNet10 PCD shapes, the OFF meshes and the resampled ModelNet40 shapes
    never have both (the flattest, a keyboard: ground 0.65, centre 0.47).
    """
    p = pos.detach().double().cpu()
    lo, hi = torch.quantile(p[:: max(1, len(p) // 100_000)], torch.tensor(
        [0.01, 0.99], dtype=p.dtype), dim=0)  # [3] each (quantile needs < 16M rows)
    size = float((hi - lo).max())
    if size <= 0:
        return None
    ground = float((p[:, 2] - lo[2] < 0.02 * size).double().mean())
    r = (p - p.median(dim=0).values).norm(dim=1)  # [N]
    centre = float(r.median() / torch.quantile(r[:: max(1, len(r) // 100_000)], 0.99)
                   .clamp(min=1e-12))
    if ground < 0.5 or centre >= 0.3:
        return None
    ext = (hi - lo).tolist()
    return {"ground": ground, "centre": centre, "dx": ext[0], "dy": ext[1],
            "dz": ext[2]}


def warn_out_of_distribution(task: Task, cfg: Config, data: Any) -> None:
    """Warn when an object model (``cls``, ``partseg``) is given a LiDAR scene.

    The rule: more than 8 times the points of its training clouds
    (``data.num_points``, 1024 when unset) and :func:`scene_like`. The warning
    names what is unusual and what the model expects.
    """
    import warnings

    if task.name not in ("cls", "partseg"):
        return
    n, trained = data.pos.size(0), cfg.data.num_points or 1024
    if n <= 8 * trained:
        return
    s = scene_like(data.pos)
    if s is None:
        return
    warnings.warn(
        f"this cloud looks like a LiDAR scene, not one object: {n:,} points "
        f"spanning {s['dx']:.3g} x {s['dy']:.3g} x {s['dz']:.3g} (file units), "
        f"{s['ground']:.0%} of them on its ground plane and half within "
        f"{s['centre']:.0%} of its radius of the middle. This {task.name} model "
        f"was trained on {cfg.data.name} objects of {trained:,} points, one "
        "object per cloud, centred and scaled to the unit sphere, z up: its "
        "answer here is out of distribution", stacklevel=3)


def load_trained(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, Task, Config, dict[str, Any]]:
    """``(model in eval mode, task, config, checkpoint meta)`` from a checkpoint."""
    from pointsam.models import create_model

    state = load_checkpoint(path, map_location=device)
    cfg = config_from_dict(state["config"])
    meta = dict(state["meta"])
    task = make_task(meta)
    model = create_model(meta["model_name"], **meta.get("model_args", {}))
    load_weights(model, state, path, meta["model_name"], meta.get("model_args", {}))
    return model.to(device).eval(), task, cfg, meta


def prediction_record(cfg: Config, meta: dict[str, Any], *,
                      num_points: int | None = None) -> dict[str, Any]:
    """What an exported file must carry to predict as :func:`predict_cloud` does.

    ``{"config": ..., "meta": ...}``: the run's whole config (its evaluation
    transform, whole-scan voxel and chunk sizes) and the checkpoint's task
    metadata (classes, categories and their parts). ``num_points`` is the cloud
    size of an end-to-end graph, which takes clouds of exactly that size: the
    record then samples objects to it (``data.num_points``) and labels a scan in
    one pass of that size (no voxel grid, chunks of ``num_points``).
    """
    import json

    from .config import config_to_dict

    c = config_to_dict(cfg)
    if num_points is not None:
        if meta.get("task") == "semseg":
            c["train"]["voxel_size"], c["train"]["chunk_points"] = 0.0, int(num_points)
        else:
            c["data"]["num_points"] = int(num_points)
    record = {"config": c, "meta": dict(meta)}
    return json.loads(json.dumps(record))  # plain JSON types, as the file stores it


def from_prediction_record(record: Any, where: str) -> tuple[Task, Config,
                                                               dict[str, Any]]:
    """``(task, config, meta)`` from :func:`prediction_record`'s dict; a clear
    error naming ``where`` when it is missing or incomplete."""
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict) \
            or not isinstance(record.get("meta"), dict):
        raise ValueError(
            f"{where} records no prediction settings (the evaluation transform "
            "and the task of the run), so it cannot be predicted with as its "
            "checkpoint is; export it with `pointsam export CHECKPOINT` (or pass "
            "extra_meta={'prediction': prediction_record(cfg, meta)} to the "
            "export function)")
    meta = dict(record["meta"])
    return make_task(meta), config_from_dict(record["config"]), meta


@torch.no_grad()
def predict_cloud(
    model: nn.Module, task: Task, cfg: Config, data: Any, *,
    category: int | None = None, runner: Any = None, votes: int | None = None,
) -> dict[str, Any]:
    """Predict on one PyG ``Data`` cloud; see the module docstring.

    Args:
        model: The trained model; its declared structure (features used, the
            fewest points it answers on) decides the checks.
        task, cfg: The run's task and config (:func:`load_trained`).
        data: One cloud, ``pos`` :math:`(N, 3)` and optional ``x``.
        category: The shape's category (part segmentation).
        runner: What computes the logits of a prepared batch,
            ``runner(Batch) -> Tensor`` (default: ``model``): an exported
            network (:func:`pointsam.export.load_exported`) runs through the
            same preparation as the eager model.
        votes: Whole scans: passes turned about z whose probabilities are
            averaged (:func:`~pointsam.engine.inference.scan_vote`; default:
            the run's ``train.votes``, as its test evaluation used).
    """
    from torch_geometric.data import Batch

    from pointsam import ops
    from pointsam.models import PointModel

    from .inference import predict_scan

    if isinstance(model, PointModel) and model.num_past > 0:
        raise ValueError(
            f"this is a multi-scan model: it labels a scan from that scan and the "
            f"{model.num_past} scan(s) before it, registered into its frame, but "
            "predict reads one scan from one file. Evaluate it with `pointsam eval` "
            "on a multi-scan dataset (SemanticKITTI with num_scans="
            f"{model.num_past + 1}, which needs poses.txt and calib.txt), or call "
            "model(batch) in Python with `frame` [N] (0 = newest scan); its "
            "single-scan twin (num_past=0) predicts on one file")
    from pointsam.data.transforms import NormalizeScale

    run = model if runner is None else runner
    device = next(model.parameters()).device
    data = drop_unused_features(model, data.clone())
    n = data.pos.size(0)
    need = min_points(model)
    distinct = int(torch.unique(data.pos, dim=0).size(0)) if n else 0
    if distinct < need:
        raise ValueError(
            f"the cloud has {n} points, {distinct} distinct; this model needs at "
            f"least {need} distinct points (the neighbourhood size of its first "
            "stage): an answer on fewer would mean nothing")
    warn_out_of_distribution(task, cfg, data)
    if task.name == "cls":
        from .builders import build_transform

        t = build_transform(cfg, train=False)
        d = t(data) if t is not None else data
        logits = run(Batch.from_data_list([d]).to(device))  # [1, C]
        prob = logits.float().softmax(-1)[0].cpu()
        return {"task": "cls", "label": int(prob.argmax()), "probs": prob.tolist()}
    if task.name == "partseg":
        assert isinstance(task, PartSegTask)
        if category is None:
            raise ValueError(
                "part segmentation needs the shape's category "
                f"(--category 0..{len(task.category_parts) - 1})"
            )
        if not 0 <= category < len(task.category_parts):
            raise ValueError(
                f"category must be in 0..{len(task.category_parts) - 1}, got {category}"
            )
        data = NormalizeScale()(data)  # the evaluation transform's unit sphere
        pos = data.pos  # [N, 3]
        num = cfg.data.num_points
        idx = ops.fps(pos, num=num) if num and n > num else torch.arange(n)  # [S]
        sub = data.clone()
        for key in ("pos", "x"):
            if getattr(sub, key, None) is not None:
                sub[key] = data[key][idx]
        sub.category = torch.tensor([category])
        if "y" in sub:
            del sub.y
        b = Batch.from_data_list([sub]).to(device)
        logits = run(b).float().cpu()  # [S, P]
        allowed = task.part_mask[category]  # [P]
        logits = logits.masked_fill(~allowed, float("-inf"))
        prob = logits.softmax(-1)  # [S, P]
        near, _ = ops.knn(pos[idx], 1, query=pos)  # [N, 1] nearest sample
        prob = prob[near[:, 0]]  # [N, P]
    else:
        chunk = cfg.train.chunk_points or cfg.data.num_points
        if "y" in data:
            del data.y
        prob = predict_scan(
            run,
            data,
            voxel_size=cfg.train.voxel_size,
            chunk_points=chunk if n > chunk else 0,
            device=device,
            votes=cfg.train.votes if votes is None else votes,
        ).cpu()
    labels = prob.argmax(-1)
    return {"task": task.name, "labels": labels, "probs": prob}
