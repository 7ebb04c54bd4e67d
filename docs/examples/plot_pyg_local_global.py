r"""
LocalGlobalAttention in a PyG model
===================================

pointsam's modules take PyG's packed layout, ``x`` :math:`(N, C)`, ``pos``
:math:`(N, 3)` and a sorted ``batch`` :math:`(N)`, so they sit between PyG
layers as they are. Here a :class:`~torch_geometric.nn.conv.MessagePassing`
edge convolution feeds a :class:`~pointsam.nn.LocalGlobalAttention`, trained
for a few seconds on real ModelNet10 shapes held as PyG
:class:`~torch_geometric.data.Data` objects and batched by PyG's own
:class:`~torch_geometric.loader.DataLoader`; then :mod:`pointsam.viz` draws the
attention of the trained model, which it knows nothing about.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch import nn
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import MessagePassing, global_max_pool

from pointsam.data import FixedPoints, NormalizeScale, read_cloud
from pointsam.nn import LocalGlobalAttention
from pointsam.ops import knn
from pointsam.viz import (
    attention_maps,
    capture,
    capture_inputs,
    default_query,
    read_png,
    render_map,
)


def shared_data() -> Path:
    """``../shared/data`` beside the repository (``POINTSAM_SHARED_DATA`` overrides),
    found from the working directory: the repository or any folder in it."""
    if os.environ.get("POINTSAM_SHARED_DATA"):
        return Path(os.environ["POINTSAM_SHARED_DATA"])
    for d in (Path.cwd(), *Path.cwd().parents):
        if (d / "pyproject.toml").is_file() and (d / "pointsam").is_dir():
            return (d / ".." / "shared" / "data").resolve()
    raise FileNotFoundError("run this from inside the pointsam repository, or set "
                            "POINTSAM_SHARED_DATA")


def show(img):
    """One rendered picture (an ``[H, W, 3]`` array) as a figure of its own size."""
    h, w = img.shape[:2]
    fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(img)
    ax.set_axis_off()


# %%
# The model
# ---------
# ``EdgeConv`` is a plain PyG ``MessagePassing`` layer (max over the neighbours
# :math:`j` of :math:`\mathrm{MLP}([\mathbf{x}_i, \mathbf{x}_j - \mathbf{x}_i])`).
# Its graph comes from :func:`pointsam.ops.knn`, whose fixed-K table
# ``nbr_idx`` :math:`(N, K)` is also handed to the attention, so both layers
# share one neighbour search. ``LocalGlobalAttention`` fuses attention over the
# k nearest points with attention over 32 pooled tokens per cloud.


class EdgeConv(MessagePassing):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(aggr="max")
        self.mlp = nn.Sequential(nn.Linear(2 * in_channels, out_channels), nn.ReLU(),
                                 nn.Linear(out_channels, out_channels))

    def forward(self, x, edge_index):
        return self.propagate(edge_index, x=x)

    def message(self, x_i, x_j):
        return self.mlp(torch.cat([x_i, x_j - x_i], dim=-1))


class Net(nn.Module):
    def __init__(self, num_classes: int, k: int = 16) -> None:
        super().__init__()
        self.k = k
        self.conv = EdgeConv(3, 32)
        self.attn = LocalGlobalAttention(32, 64, num_heads=4, k=k, num_global=32)
        self.head = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, data):
        pos, batch = data.pos, data.batch
        nbr_idx, nbr_mask = knn(pos, self.k, batch)  # [N, K] each
        target = torch.arange(pos.size(0)).unsqueeze(1).expand_as(nbr_idx)  # [N, K]
        edge_index = torch.stack([nbr_idx[nbr_mask], target[nbr_mask]])  # [2, E]
        x = self.conv(pos, edge_index)  # [N, 32]
        x = self.attn(x, pos, batch, nbr_idx, nbr_mask)  # [N, 64]
        return self.head(global_max_pool(x, batch))  # [B, classes]


# %%
# The data: ModelNet10 shapes as PyG ``Data``
# -------------------------------------------
# Four classes, 24 training shapes of each and 8 test shapes, every cloud put in
# the unit sphere and sampled to 256 points by farthest-point sampling.

torch.manual_seed(0)
root = shared_data() / "modelnet10_pcd_1024" / "ModelNet10" / "pcd"
classes = ["chair", "monitor", "table", "toilet"]
prepare = [NormalizeScale(), FixedPoints(256, method="fps")]


def load(split: str, count: int) -> list[Data]:
    out = []
    for label, name in enumerate(classes):
        for path in sorted((root / name / split).glob("*.pcd"))[:count]:
            data = Data(pos=read_cloud(path).pos, y=torch.tensor([label]))
            for t in prepare:
                data = t(data)
            out.append(data)
    return out


train_set, test_set = load("train", 24), load("test", 8)
print(f"{len(train_set)} training and {len(test_set)} test clouds; one of them:",
      train_set[0])

# %%
# Train
# -----

model = Net(len(classes))
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
loader = DataLoader(train_set, batch_size=16, shuffle=True)
start, losses = time.perf_counter(), []
for _epoch in range(12):
    model.train()
    for batch in loader:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(batch), batch.y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
print(f"trained in {time.perf_counter() - start:.0f} s")

model.eval()
with torch.no_grad():
    test = next(iter(DataLoader(test_set, batch_size=len(test_set))))
    acc = (model(test).argmax(-1) == test.y).float().mean()
print(f"test accuracy on {len(test_set)} shapes: {acc:.2f} (chance {1 / len(classes):.2f})")

fig, ax = plt.subplots(figsize=(6.4, 2.4), layout="constrained")
ax.plot(losses)
ax.set_xlabel("step")
ax.set_ylabel("cross-entropy")
ax.set_title("training loss")

# %%
# What the attention does
# -----------------------
# :func:`~pointsam.viz.capture` records the weights of every pointsam module in
# any model; :func:`~pointsam.viz.attention_maps` turns them into pictures by
# the kind each module declares for them. For one test chair: the local weights
# of the query point's neighbours, the weights of the global tokens, and the
# per-point share of the two branches in the fusion.

chair = Batch.from_data_list([test_set[0]])
with torch.no_grad(), capture(model) as record, capture_inputs(model) as inputs:
    model(chair)
print("recorded:", {name: sorted(w) for name, w in record.items()})
# sphinx_gallery_thumbnail_number = 4
out_dir = Path(tempfile.mkdtemp(prefix="pointsam-viz-"))
for amap in attention_maps(record, inputs, chair.pos, query=default_query(chair.pos)):
    for png in render_map(amap, out_dir, ply=False):  # what `pointsam viz` writes
        show(read_png(png))
shutil.rmtree(out_dir)
