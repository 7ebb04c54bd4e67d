r"""
A ModelNet10 chair through the shipped classifier
=================================================

``pointnet2_lite_cbam_modelnet10`` is a lite PointNet++ with a CBAM attention
block after each set abstraction, trained on the official ModelNet10 split and
shipped inside the package (``pointsam models`` lists it; nothing downloads).
Here it classifies a real chair of ModelNet10's test split, and
:mod:`pointsam.viz` draws every attention weight of that forward pass: the
Python version of ::

    pointsam predict --model pointnet2_lite_cbam_modelnet10 chair_0890.pcd --out pred.ply
    pointsam viz --model pointnet2_lite_cbam_modelnet10 chair_0890.pcd --out viz/
"""

import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from torch_geometric.data import Batch

from pointsam.data import Compose, FixedPoints, NormalizeScale, read_cloud
from pointsam.models import load_pretrained
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
# The cloud and the model
# -----------------------
# The PCD file holds 1024 Poisson-disk samples of the mesh, in the mesh's own
# units (:func:`~pointsam.data.read_cloud` reads any supported format). The
# shipped model carries its card: classes, training config, metrics.

torch.manual_seed(0)
path = (shared_data() / "modelnet10_pcd_1024" / "ModelNet10" / "pcd" / "chair"
        / "test" / "chair_0890.pcd")
cloud = read_cloud(path)
model = load_pretrained("pointnet2_lite_cbam_modelnet10")  # eval mode
info = model.pretrained
print(f"{path.name}: {cloud.pos.size(0)} points")
print(f"model {info['model']} ({info['args']}), test metrics {info['metrics']}")

# %%
# Predict
# -------
# The evaluation transform of the training run: the unit sphere, then
# farthest-point sampling to the training size (512 points). ``capture``
# records every attention weight of the forward pass, ``capture_inputs`` the
# points each layer ran on.

num_points = info["config"]["data"]["num_points"]
data = Compose([NormalizeScale(), FixedPoints(num_points, method="fps")])(cloud)
batch = Batch.from_data_list([data])
with torch.no_grad(), capture(model) as record, capture_inputs(model) as inputs:
    logits = model(batch)  # [1, 10]
probs = logits.softmax(-1)[0]
classes = info["classes"]
for i in probs.argsort(descending=True)[:3].tolist():
    print(f"{classes[i]:>12}: {probs[i]:.3f}")

fig, ax = plt.subplots(figsize=(6.4, 2.4), layout="constrained")
ax.bar(classes, probs.numpy(), color="tab:blue")
ax.set_ylabel("probability")
ax.set_title(f"{path.name}: predicted {classes[int(probs.argmax())]}")
ax.tick_params(axis="x", labelrotation=45)

# %%
# The attention weights
# ---------------------
# Each CBAM block has a channel gate (one weight per channel, a bar chart) and
# a point gate (one weight per point, on the points of its stage). The query
# point of neighbour maps is the one nearest the centroid, as ``pointsam viz``
# chooses it.

print("recorded:", {name: sorted(w) for name, w in record.items()})
# sphinx_gallery_thumbnail_number = 3
out_dir = Path(tempfile.mkdtemp(prefix="pointsam-viz-"))
for amap in attention_maps(record, inputs, data.pos, query=default_query(data.pos)):
    for png in render_map(amap, out_dir, ply=False):  # what `pointsam viz` writes
        show(read_png(png))
shutil.rmtree(out_dir)
