r"""Load a trained checkpoint and predict on one cloud; write a coloured PLY.

- ``cls``: the cloud normalised and sampled as in evaluation; returns the class
  and the softmax probabilities.
- ``partseg``: normalised; clouds larger than the training size are sampled by
  FPS and the labels carried back to every point by its nearest sample; the
  prediction is restricted to the category's parts (``category`` required).
- ``semseg``: :func:`~pointsam.engine.inference.predict_scan` with the config's
  ``voxel_size`` and ``chunk_points`` (default chunk: ``data.num_points``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint
from .config import Config, config_from_dict
from .tasks import PartSegTask, Task, make_task

__all__ = ["load_trained", "predict_cloud", "write_ply", "label_colors"]

# 20 distinct colours (tab20-like), cycled for more classes
_PALETTE = np.array(
    [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
        [174, 199, 232],
        [255, 187, 120],
        [152, 223, 138],
        [255, 152, 150],
        [197, 176, 213],
        [196, 156, 148],
        [247, 182, 210],
        [199, 199, 199],
        [219, 219, 141],
        [158, 218, 229],
    ],
    dtype=np.uint8,
)


def label_colors(labels: np.ndarray) -> np.ndarray:
    """``[N, 3]`` uint8 colour of each label (a fixed 20-colour cycle)."""
    return _PALETTE[np.asarray(labels) % len(_PALETTE)]


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
    model.load_state_dict(state["model"])
    return model.to(device).eval(), task, cfg, meta


@torch.no_grad()
def predict_cloud(
    model: nn.Module, task: Task, cfg: Config, data: Any, *, category: int | None = None
) -> dict[str, Any]:
    """Predict on one PyG ``Data`` cloud; see the module docstring."""
    from torch_geometric.data import Batch

    from pointsam import ops

    from .inference import predict_scan

    device = next(model.parameters()).device
    data = data.clone()
    n = data.pos.size(0)
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


def write_ply(
    path: str | Path,
    pos: np.ndarray,
    colors: np.ndarray,
    labels: np.ndarray | None = None,
    scalars: dict[str, np.ndarray] | None = None,
    comments: list[str] | None = None,
) -> Path:
    """Binary little-endian PLY: xyz float32, rgb uint8, optional int32 ``label``
    and float32 scalar properties (any viewer can re-colour by them).

    Example:
        >>> import tempfile
        >>> p = write_ply(tempfile.mkdtemp() + "/a.ply", np.zeros((2, 3)),
        ...               np.zeros((2, 3), np.uint8), labels=np.array([0, 1]))
        >>> open(p, "rb").read().split(b"end_header")[0].count(b"property")
        7
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(pos)
    fields = [
        ("x", "<f4"),
        ("y", "<f4"),
        ("z", "<f4"),
        ("red", "u1"),
        ("green", "u1"),
        ("blue", "u1"),
    ]
    if labels is not None:
        fields.append(("label", "<i4"))
    for k in scalars or {}:
        fields.append((k, "<f4"))
    arr = np.empty(n, dtype=fields)
    arr["x"], arr["y"], arr["z"] = (np.asarray(pos, np.float32)[:, i] for i in range(3))
    c = np.asarray(colors, np.uint8)
    arr["red"], arr["green"], arr["blue"] = c[:, 0], c[:, 1], c[:, 2]
    if labels is not None:
        arr["label"] = np.asarray(labels, np.int32)
    for k, v in (scalars or {}).items():
        arr[k] = np.asarray(v, np.float32)
    ply_types = {"<f4": "float", "u1": "uchar", "<i4": "int"}
    header = ["ply", "format binary_little_endian 1.0"]
    header += [f"comment {c}" for c in comments or []]
    header.append(f"element vertex {n}")
    header += [f"property {ply_types[t]} {k}" for k, t in fields]
    header.append("end_header")
    with open(path, "wb") as f:
        f.write(("\n".join(header) + "\n").encode())
        f.write(arr.tobytes())
    return path
