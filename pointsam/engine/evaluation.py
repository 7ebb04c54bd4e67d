r"""Evaluation: loss and metrics of a model over a loader, with test-time votes.

:func:`evaluate` is what the trainer runs on the validation and test splits and
what ``pointsam eval`` runs on a checkpoint: per batch, the softmax scores of
``votes`` passes (:func:`vote_augment`: identity, then random anisotropic
scales) are averaged; semantic segmentation with ``voxel_size`` or
``chunk_points`` goes scan by scan through
:func:`~pointsam.engine.inference.predict_scan` (whole-scan inference), its
votes turned about the vertical axis
(:func:`~pointsam.engine.inference.scan_vote`). The loss
and the metric state are summed over DDP ranks.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from ._guards import drop_unused_features, worker_errors
from .distributed import all_reduce_sum
from .inference import predict_scan
from .tasks import Task

__all__ = ["evaluate", "vote_augment", "autocast", "drop_unused_features",
           "worker_errors"]


def vote_augment(data: Any, vote: int, seed: int = 0) -> Any:
    r"""Test-time augmentation for vote ``vote`` (0: identity).

    Random anisotropic scale :math:`s \sim U(0.8, 1.25)^3` per vote, drawn from a
    private generator so evaluation never touches the global RNG.
    """
    if vote == 0:
        return data
    g = torch.Generator().manual_seed(seed * 1000 + vote)
    s = torch.empty(3).uniform_(0.8, 1.25, generator=g).to(data.pos)
    out = data.clone()
    out.pos = data.pos * s
    return out


def autocast(device: torch.device, amp: bool) -> Any:
    """float16 autocast on CUDA when ``amp``; a no-op context otherwise."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    task: Task,
    device: torch.device,
    *,
    votes: int = 1,
    amp: bool = False,
    max_batches: int = 0,
    voxel_size: float = 0.0,
    chunk_points: int = 0,
    seed: int = 0,
    progress: bool = False,
    desc: str = "eval",
) -> dict[str, Any]:
    """Loss and metrics of ``model`` over ``loader``, summed over DDP ranks.

    With ``votes > 1`` the softmax scores of ``votes`` augmented passes are
    averaged. For ``semseg`` with ``voxel_size`` or ``chunk_points`` each scan goes
    through :func:`~pointsam.engine.inference.predict_scan` with its votes
    (turned about z, the probabilities averaged).
    """
    from tqdm.auto import tqdm

    model.eval()
    metrics = task.new_metrics()
    loss_sum = torch.zeros(2, dtype=torch.float64)  # [sum of loss * count, count]
    whole_scan = task.name == "semseg" and (voxel_size > 0 or chunk_points > 0)
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress, file=sys.stderr)
    for i, data in enumerate(worker_errors(bar)):
        if max_batches and i >= max_batches:
            break
        data = drop_unused_features(model, data.to(device))
        if whole_scan:
            scores = torch.cat(
                [
                    predict_scan(
                        model,
                        d,
                        voxel_size=voxel_size,
                        chunk_points=chunk_points,
                        device=device,
                        votes=votes,
                    )
                    for d in data.to_data_list()
                ]
            )  # [N, C]
            logits = scores.clamp_min(1e-12).log()
        else:
            with autocast(device, amp):
                logits = model(data).float()
            scores = logits.softmax(-1)
            for v in range(1, votes):
                with autocast(device, amp):
                    scores = scores + model(
                        vote_augment(data, v, seed)
                    ).float().softmax(-1)
            if votes > 1:
                scores = scores / votes
        c = task.count(data)
        if c:
            loss_sum += torch.tensor(
                [float(task.loss(logits, data)) * c, c], dtype=torch.float64
            )
        task.update(metrics, scores, data)
    metrics.reduce()
    all_reduce_sum(loss_sum)
    out: dict[str, Any] = {
        "loss": float(loss_sum[0] / loss_sum[1]) if loss_sum[1] > 0 else float("nan")
    }
    out.update(metrics.compute())
    if hasattr(metrics, "confusion"):
        out["confusion"] = metrics.confusion.tolist()
    return out
