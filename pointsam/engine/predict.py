r"""Load a trained checkpoint and predict on one cloud; write a coloured PLY.

- ``cls``: the cloud normalised and sampled as in evaluation; returns the class
  and the softmax probabilities.
- ``partseg``: normalised; clouds larger than the training size are sampled by
  FPS and the labels carried back to every point by its nearest sample; the
  prediction is restricted to the category's parts (``category`` required).
- ``semseg``: :func:`~pointsam.engine.inference.predict_scan` with the config's
  ``voxel_size`` and ``chunk_points`` (default chunk: ``data.num_points``). A
  multi-scan model (``pointnet2_lite_temporal_lidarseg`` with ``num_past > 0``)
  is refused: one file is one scan.
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

__all__ = ["load_trained", "predict_cloud", "min_points"]


def min_points(model: nn.Module) -> int:
    """The fewest distinct points an answer of ``model`` means anything on.

    The neighbourhood size of the model's first sampling or grouping stage:
    the largest ``k`` of the first PointNet++ set abstraction (``ks``), else
    the first module's ``k`` (DGCNN's kNN); 1 for a model that has neither.
    """
    for m in model.modules():
        ks = getattr(m, "ks", None)
        if isinstance(ks, (list, tuple)) and ks and all(isinstance(k, int) for k in ks):
            return max(ks)
        k = getattr(m, "k", None)
        if isinstance(k, int) and not isinstance(k, bool) and k > 0:
            return k
    return 1

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


@torch.no_grad()
def predict_cloud(
    model: nn.Module, task: Task, cfg: Config, data: Any, *, category: int | None = None
) -> dict[str, Any]:
    """Predict on one PyG ``Data`` cloud; see the module docstring."""
    from torch_geometric.data import Batch

    from pointsam import ops
    from pointsam.models import TemporalLidarSegmenter

    from .inference import predict_scan

    if isinstance(model, TemporalLidarSegmenter) and model.num_past > 0:
        raise ValueError(
            f"this is a multi-scan model: it labels a scan from that scan and the "
            f"{model.num_past} scan(s) before it, registered into its frame, but "
            "predict reads one scan from one file. Evaluate it with `pointsam eval` "
            "on a multi-scan dataset (SemanticKITTI with num_scans="
            f"{model.num_past + 1}, which needs poses.txt and calib.txt), or call "
            "model(batch) in Python with `frame` [N] (0 = newest scan); its "
            "single-scan twin (num_past=0) predicts on one file")
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
    if task.name == "cls":
        from .builders import build_transform

        t = build_transform(cfg, train=False)
        d = t(data) if t is not None else data
        logits = model(Batch.from_data_list([d]).to(device))  # [1, C]
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
        pos = data.pos - data.pos.mean(0, keepdim=True)
        pos = pos / pos.norm(dim=1).max().clamp(min=1e-12)  # unit sphere
        data.pos = pos
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
        logits = model(b).float().cpu()  # [S, P]
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
            model,
            data,
            voxel_size=cfg.train.voxel_size,
            chunk_points=chunk if n > chunk else 0,
            device=device,
        ).cpu()
    labels = prob.argmax(-1)
    return {"task": task.name, "labels": labels, "probs": prob}
