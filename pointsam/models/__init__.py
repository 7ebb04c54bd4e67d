r"""Backbones, heads and the model registry (DESIGN.md section 4).

``create_model(name, **overrides)`` builds a registered model; ``list_models()``
lists the names. Models take a PyG ``Data``/``Batch`` (``pos``, ``batch``, optional
``x``, ``category`` for part segmentation) and return logits: classification
:math:`(B, \text{classes})`, segmentation :math:`(N, \text{classes})`. Attention
plugs in per stage with ``attention=`` (:mod:`pointsam.models.attention`).

Choosing a backbone:

- **PointNet++** (``pointnet2_*``): FPS + ball grouping; cost grows with the number
  of centres, not with N^2, so it takes whole LiDAR scans (``pointnet2_ssg_semseg``
  samples a ratio 1/4 per level; ``pointnet2_lite_semseg`` groups by kNN and is
  scale-free). MSG is more robust to uneven density at about 1.2x the parameters.
  Fastest to train on a CPU.
- **DGCNN** (``dgcnn_*``): EdgeConv on a kNN graph rebuilt in feature space at
  every stage: the stronger classifier on ModelNet-sized clouds (1-2k points),
  but the dynamic graph is O(N^2) per cloud. For scans use
  ``static_graph=True`` (one coordinate kNN shared by all stages, linear memory);
  ``dgcnn_*_semseg`` with ``static_graph=True`` and ``dgcnn_lite_semseg`` do.
- **lite** variants: narrow versions that train on a 2-core CPU (ModelNet10,
  1024 points) in minutes; the full-size ones match the published architectures
  (PointNet++ SSG cls 1.48M parameters, DGCNN cls 1.81M, 40 classes).
- **attention**: ``attention="cbam"`` (cheap gates), ``"local"``/``"axial"``
  (k-neighbour attention), ``"local_global"`` (adds a pooled global context,
  O(N(k+M))), one name for all stages or a list per stage; ``fusion="laff"``
  replaces the concatenation of DGCNN levels / MSG scales by LAFF.

Deployment (DESIGN.md section 9): ``model(batch)`` is ``model.network(x, pos,
model.plan(pos, batch))``; the plan (every index and weight from the coordinates,
by :mod:`pointsam.ops`) stays in Python, the network is plain tensor ops that
:mod:`pointsam.export` exports to ONNX / ``torch.export``.

Example:
    >>> import torch
    >>> model = create_model("dgcnn_lite_cls", num_classes=10, attention="cbam")
    >>> model.eval()(pos=torch.randn(64, 3)).shape
    torch.Size([1, 10])
"""


from . import heads, shapenet_parts
from .attention import ATTENTION, build_attention
from .base import PointModel
from .dgcnn import DGCNN, EdgeConv, feature_knn
from .heads import ClsHead, PointClassifier, PointSegmenter, SegHead
from .lidar import GroundHeightSegmenter, height_above_ground, local_shape
from .pointnet2 import FeaturePropagation, PointNet2, SetAbstraction
from .pretrained import list_pretrained, load_pretrained
from .registry import create_model, list_models, register_model
from .temporal_lidar import TemporalLidarSegmenter

__all__ = [
    "PointModel",
    "create_model", "list_models", "register_model", "PointNet2", "DGCNN",
    "EdgeConv", "SetAbstraction", "FeaturePropagation", "feature_knn", "heads",
    "ClsHead", "SegHead", "PointClassifier", "PointSegmenter", "ATTENTION",
    "build_attention", "shapenet_parts", "GroundHeightSegmenter", "height_above_ground",
    "local_shape",
    "load_pretrained", "list_pretrained", "TemporalLidarSegmenter",
]
