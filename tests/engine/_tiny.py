"""Tiny models and data sets that exercise the engine in a second on 2 cores.

They stand in for the real backbones and synthetic sets where a test checks the
engine's own mechanics (resume, DDP, checkpoints); the end-to-end tests through
configs use the real ``pointsam.models`` / ``pointsam.data``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset
from torch_geometric.data import Data

from pointsam.ops import segment_max


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread avoids spin contention on a shared CPU.

    Imported into the test modules (an autouse fixture applies where it is
    visible); restores the thread count afterwards.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


class TinyNet(nn.Module):
    """PointNet in miniature: per-point MLP, max pool, head (dropout uses the RNG)."""

    def __init__(
        self,
        num_classes: int,
        task: str = "cls",
        hidden: int = 16,
        num_categories: int = 0,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.task, self.num_categories = task, num_categories
        self.mlp = nn.Sequential(
            nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.drop = nn.Dropout(dropout)
        extra = num_categories if task == "partseg" else 0
        self.head = nn.Linear(
            (hidden if task == "cls" else 2 * hidden) + extra, num_classes
        )

    def forward(self, data: Data) -> torch.Tensor:
        b = int(data.batch.max()) + 1
        h = self.mlp(data.pos)  # [N, H]
        g = segment_max(h, data.batch, b)  # [B, H]
        if self.task == "cls":
            return self.head(self.drop(g))  # [B, classes]
        f = [h, g[data.batch]]
        if self.task == "partseg":
            f.append(
                nn.functional.one_hot(
                    data.category.view(-1)[data.batch], self.num_categories
                ).float()
            )
        return self.head(self.drop(torch.cat(f, 1)))  # [N, classes]


class TinyShapes(Dataset):
    """Class c = a sphere of radius 1 + c, with noise; easy to separate."""

    num_classes = 3
    class_names = ["small", "medium", "large"]

    def __init__(self, n: int = 24, points: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            c = i % 3
            d = torch.randn(points, 3, generator=g)
            pos = d / d.norm(dim=1, keepdim=True) * (1 + c)
            pos = pos + 0.05 * torch.randn(points, 3, generator=g)
            self.items.append(Data(pos=pos, y=torch.tensor([c])))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Data:
        return self.items[i]


class TinyParts(Dataset):
    """Category 0 has parts {0, 1} (by z sign), category 1 parts {2, 3, 4} (by x)."""

    category_parts = [[0, 1], [2, 3, 4]]
    num_parts = 5

    def __init__(self, n: int = 16, points: int = 32, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            c = i % 2
            pos = torch.randn(points, 3, generator=g)
            if c == 0:
                y = (pos[:, 2] > 0).long()
            else:
                y = 2 + (pos[:, 0] > -0.4).long() + (pos[:, 0] > 0.4).long()
            self.items.append(Data(pos=pos, y=y, category=torch.tensor([c])))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Data:
        return self.items[i]


class TinyScenes(Dataset):
    """Label by height: ground (z < 0.2), mid, top; some points ignored (-1)."""

    num_classes = 3
    ignore_index = -1

    def __init__(self, n: int = 8, points: int = 200, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            pos = torch.rand(points, 3, generator=g) * torch.tensor([4.0, 4.0, 1.0])
            y = (pos[:, 2] > 0.2).long() + (pos[:, 2] > 0.6).long()
            y[torch.rand(points, generator=g) < 0.05] = -1
            self.items.append(Data(pos=pos, y=y))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Data:
        return self.items[i]


def tiny_setup(task: str = "cls", seed: int = 0):
    """(model, datasets, task object) for a tiny run of ``task``."""
    from pointsam.engine.tasks import ClsTask, PartSegTask, SemSegTask

    torch.manual_seed(seed)
    if task == "cls":
        ds = {
            "train": TinyShapes(24, seed=1),
            "val": TinyShapes(6, seed=2),
            "test": TinyShapes(9, seed=3),
        }
        return TinyNet(3), ds, ClsTask(3)
    if task == "partseg":
        ds = {
            "train": TinyParts(16, seed=1),
            "val": TinyParts(4, seed=2),
            "test": TinyParts(6, seed=3),
        }
        return (
            TinyNet(5, "partseg", num_categories=2),
            ds,
            PartSegTask(TinyParts.category_parts, 5),
        )
    ds = {
        "train": TinyScenes(8, seed=1),
        "val": TinyScenes(2, seed=2),
        "test": TinyScenes(3, seed=3),
    }
    return TinyNet(3, "semseg"), ds, SemSegTask(3, ignore_index=-1)
