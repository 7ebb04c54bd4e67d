"""Tiny overrides per registered model, so every model runs in milliseconds,
and the ragged batches the model tests share."""

from __future__ import annotations

from typing import Any

import torch
from torch_geometric.data import Batch, Data

from pointsam.models import create_model

_SSG = [{"sample": 8, "radius": 0.8, "k": 6, "mlp": [8, 16]},
        {"sample": 4, "radius": 1.5, "k": 6, "mlp": [16, 16]}]
_MSG = [{"sample": 8, "radius": [0.5, 1.0], "k": [4, 6], "mlp": [[8, 8], [8, 8]]},
        {"sample": 4, "radius": [1.0, 2.0], "k": [4, 6], "mlp": [[8, 8], [8, 8]]}]
_SEM = [{"sample": 0.5, "radius": 0.8, "k": 6, "mlp": [8, 16]},
        {"sample": 0.5, "radius": 1.5, "k": 6, "mlp": [16, 16]}]
_DG = {"channels": [[8], [16]], "k": 4, "emb_channels": 16, "head_channels": (16,)}


def tiny(name: str) -> dict[str, Any]:
    """Overrides that shrink the registered model ``name`` (same structure)."""
    if name.startswith("dgcnn"):
        kw = dict(_DG)
        if "partseg" in name:
            kw["category_channels"] = 8
        return kw
    kw = {"head_channels": (16,)}
    if name.endswith("_cls"):
        kw.update(stages=_MSG if "msg" in name else _SSG, global_mlp=[16, 32])
    elif name.endswith("partseg"):
        kw.update(stages=_MSG if "msg" in name else _SSG, global_mlp=[16, 32],
                  decoder=[[16], [16], [16]])
    else:  # semseg
        kw.update(stages=_SEM, decoder=[[16], [16]])
    return kw


def ragged(sizes: tuple[int, ...] = (9, 14, 20), seed: int = 0
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """pos [N, 3] (clouds of the given sizes, unit scale) and sorted batch [N]."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(sum(sizes), 3, generator=g)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return pos, batch


def model_data(name: str, sizes: tuple[int, ...] = (9, 14, 20), seed: int = 0) -> Batch:
    pos, batch = ragged(sizes, seed)
    clouds = []
    for b in range(len(sizes)):
        d = Data(pos=pos[batch == b])
        if "partseg" in name:
            d.category = torch.tensor([(3 * b + 1) % 16])
        if "temporal" in name:  # a multi-scan model: 3 interleaved scans per cloud
            d.frame = torch.arange(d.num_nodes) % 3
        clouds.append(d)
    return Batch.from_data_list(clouds)


def output_rows(name: str, data: Batch) -> list[tuple[int, int]]:
    """Rows ``[start, end)`` of each cloud in a per-point output of ``name``.

    A multi-scan model labels the newest scan (``frame == 0``) only.
    """
    keep = (data.frame == 0) if "temporal" in name else torch.ones(
        data.num_nodes, dtype=torch.bool)
    counts = torch.bincount(data.batch[keep], minlength=data.num_graphs)
    ends = torch.cumsum(counts, 0).tolist()
    return list(zip([0] + ends[:-1], ends))


def num_classes_for(name: str) -> int:
    return 50 if "partseg" in name else 5


def build_tiny(name: str) -> torch.nn.Module:
    return create_model(name, num_classes=num_classes_for(name), **tiny(name))
