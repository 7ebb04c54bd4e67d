r"""
Export to ONNX and run in ONNX Runtime
======================================

:mod:`pointsam.export` writes a model's network to an ONNX file and runs it in
ONNX Runtime. A pointsam model is ``network(x, pos, plan(pos, batch))``: the
*plan* (farthest-point samples, kNN and ball-query tables, interpolation
weights) is index bookkeeping computed by :mod:`pointsam.ops`, the *network* is
plain tensor ops, and the network is what is exported, for any number of points
and clouds. The file records the model's registry name, so
:class:`~pointsam.export.OnnxModel` rebuilds the plan side without the weights.
The Python version of ::

    pointsam export --model pointnet2_lite_cbam_modelnet10 --out model.onnx
    pointsam predict --onnx model.onnx chair_0890.pcd --out pred.ply
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch_geometric.data import Batch

from pointsam.data import Compose, FixedPoints, NormalizeScale, read_cloud
from pointsam.export import OnnxModel, export_onnx
from pointsam.models import load_pretrained


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


# %%
# Export
# ------
# The shipped ModelNet10 classifier, with its registry name and arguments in
# the file's metadata. ``with_attention=True`` would add every attention weight
# as an output (``attn.<module>.<weight>``).

torch.manual_seed(0)
model = load_pretrained("pointnet2_lite_cbam_modelnet10")
info = model.pretrained
out_dir = Path(tempfile.mkdtemp(prefix="pointsam-onnx-"))
start = time.perf_counter()
path = export_onnx(model, out_dir / "model.onnx", model_name=info["model"],
                   model_args=info["args"],
                   extra_meta={"class_names": info["classes"]})
print(f"exported {path.name} ({path.stat().st_size / 1e6:.1f} MB) in "
      f"{time.perf_counter() - start:.0f} s")

# %%
# Run it in ONNX Runtime
# ----------------------
# :class:`~pointsam.export.OnnxModel` checks the file (pointsam's metadata, the
# graph's inputs and outputs, the hash of the weights), opens an ONNX Runtime
# session and computes the plan with :mod:`pointsam.ops`. Five test shapes of
# ModelNet10, prepared as in evaluation (unit sphere, 512 points by
# farthest-point sampling), go through as one ragged batch.

net = OnnxModel(path, threads=1)
print("inputs:", net.input_names[:4], "...", f"({len(net.input_names)} in all)")
root = shared_data() / "modelnet10_pcd_1024" / "ModelNet10" / "pcd"
names = ["chair/test/chair_0890", "bed/test/bed_0516", "sofa/test/sofa_0681",
         "toilet/test/toilet_0345", "monitor/test/monitor_0466"]
prepare = Compose([NormalizeScale(), FixedPoints(512, method="fps")])
clouds = Batch.from_data_list([prepare(read_cloud(root / f"{n}.pcd")) for n in names])
onnx_logits = torch.from_numpy(net(clouds.pos, clouds.batch)["logits"])  # [5, 10]
with torch.no_grad():
    eager_logits = model(clouds)  # [5, 10]

classes = info["classes"]
for n, o, e in zip(names, onnx_logits.argmax(-1), eager_logits.argmax(-1)):
    print(f"{n.split('/')[-1]:>12}: ONNX Runtime says {classes[o]:<8} eager says "
          f"{classes[e]}")
diff = (onnx_logits - eager_logits).abs().max().item()
print(f"largest logit difference, ONNX Runtime vs eager: {diff:.1e}")

# %%
# The two runtimes' class probabilities side by side:

fig, axes = plt.subplots(1, len(names), figsize=(10, 2.4), sharey=True,
                         layout="constrained")
x = np.arange(len(classes))
for ax, n, o, e in zip(axes, names, onnx_logits.softmax(-1), eager_logits.softmax(-1)):
    ax.bar(x - 0.2, e.numpy(), 0.4, label="eager")
    ax.bar(x + 0.2, o.numpy(), 0.4, label="ONNX Runtime")
    ax.set_title(n.split("/")[-1], fontsize=9)
    ax.set_xticks(x, classes, rotation=90, fontsize=7)
axes[0].set_ylabel("probability")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)

shutil.rmtree(out_dir)  # the exported file
