r"""
The shipped LiDAR segmenter on a real KITTI scan
================================================

``pointnet2_lite_lidarseg_kitti`` labels every point of a LiDAR scan with one
of SemanticKITTI's 19 classes. Its only input feature is the height above the
local ground, computed inside the model from the coordinates, so any scan in
metres with z up will do. Here it labels scan ``004139`` of the KITTI object
benchmark (123,266 points, a drive SemanticKITTI never saw), and the KITTI 3D
boxes of that scan say how well it found the cars and the people: the Python
version of ::

    pointsam predict --model pointnet2_lite_lidarseg_kitti 004139.bin --out pred.ply
"""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch_geometric.data import Data

from pointsam.data.kitti_boxes import read_kitti_object
from pointsam.engine import predict_scan
from pointsam.models import load_pretrained
from pointsam.viz import Panel, render_figure


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
# The scan, its boxes and the model
# ---------------------------------
# :func:`~pointsam.data.kitti_boxes.read_kitti_object` reads the Velodyne scan
# (x, y, z, remission) with its ``label_2`` boxes and ``calib``: ``y`` is car
# (0) or person (5) inside a box, and ``scored`` marks the points whose truth
# the boxes give completely (those the left camera sees, outside the regions
# marked DontCare and outside boxes of other classes such as vans).

torch.manual_seed(0)
root = shared_data() / "kitti_object_sample" / "training"
scan = read_kitti_object(root / "velodyne" / "004139.bin",
                         root / "label_2" / "004139.txt", root / "calib" / "004139.txt")
model = load_pretrained("pointnet2_lite_lidarseg_kitti")  # eval mode
info = model.pretrained
classes, colors = info["classes"], np.asarray(info["colors"])
print(f"{scan.pos.size(0)} points; {int(scan.scored.sum())} scored by the boxes")
print("how the model wants its input:", info["input"])

# %%
# Label every point
# -----------------
# :func:`~pointsam.engine.predict_scan` runs whole-scan inference as
# ``pointsam predict`` does, with the settings of the model's run: a 0.1 m
# voxel grid, chunks of at most 20,000 voxels, the probabilities carried back
# to every point of its voxel, averaged over 8 passes turned about z
# (``votes``: test-time augmentation).

train = info["config"]["train"]
probs = predict_scan(model, Data(pos=scan.pos), voxel_size=train["voxel_size"],
                     chunk_points=train["chunk_points"],
                     votes=train.get("votes", 1))  # [N, 19]
pred = probs.argmax(-1).numpy()
counts = np.bincount(pred, minlength=len(classes))
for c in np.argsort(-counts):
    if counts[c]:
        print(f"{classes[c]:>14}: {counts[c]:6d} points")

# %%
# The scan from above, within 40 m, coloured by the predicted class:

pos = scan.pos.numpy()
near = np.abs(pos[:, :2]).max(1) < 40.0
shown = sorted(set(pred[near].tolist()), key=lambda c: -counts[c])
legend = [(classes[c], colors[c]) for c in shown[:10]]
show(render_figure([Panel(pos[near], colors=colors[pred[near]], legend=legend)],
                   size=(760, 560), views=("top",), title="predicted classes, top view"))

# %%
# Against the boxes
# -----------------
# Where the boxes give the truth (the camera's field of view), the IoU of the
# boxed classes, with the points outside every box counted as background, and
# what the model called the points inside the boxes. This is a small model
# trained on two frames of one drive (its card: car IoU 0.19 and person IoU
# 0.43 here, car 0.81 on KITTI raw drive 0001, drives it never saw): read the
# numbers as a measurement, not a showcase.

y, scored = scan.y.numpy(), scan.scored.numpy()
for name, c in (("car", 0), ("person", 5)):
    truth, said = scored & (y == c), scored & (pred == c)
    iou = (truth & said).sum() / max((truth | said).sum(), 1)
    called = np.bincount(pred[truth], minlength=len(classes))
    top = ", ".join(f"{classes[i]} {called[i]}" for i in np.argsort(-called)[:3])
    print(f"{name:>7}: {truth.sum():5d} points in boxes, {said.sum():5d} predicted, "
          f"IoU {iou:.2f}; the box points were called: {top}")

# %%
# The camera's view of the scan, the box labels above and the predictions
# below (car blue, person red, the rest grey):

view = scored & (pos[:, 0] < 45.0)
grey = np.array([0.8, 0.8, 0.8])


def paint(labels):
    out = np.tile(grey, (len(labels), 1))
    for c in (0, 5):
        out[labels == c] = colors[c]
    return out


boxes = Panel(pos[view], colors=paint(y[view]), title="KITTI boxes",
              legend=[("car", colors[0]), ("person", colors[5])])
predicted = Panel(pos[view], colors=paint(pred[view]), title="predicted")
show(render_figure([boxes, predicted], size=(760, 860), views=("top",),
                   title="004139: the camera's field of view"))
