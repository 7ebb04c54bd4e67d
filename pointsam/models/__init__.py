r"""Backbones, heads and the model registry (DESIGN.md section 4).

``create_model(name, **overrides)`` builds a registered model; ``list_models()``
lists the names. Models take a PyG ``Data``/``Batch`` (``pos``, ``batch``, optional
``x``, ``category`` for part segmentation) and return logits: classification
:math:`(B, \text{classes})`, segmentation :math:`(N, \text{classes})`. Attention
plugs in per stage with ``attention=`` (:mod:`pointsam.models.attention`).
"""

from . import heads, shapenet_parts
from .attention import ATTENTION, build_attention
from .dgcnn import DGCNN, EdgeConv, feature_knn
from .heads import ClsHead, PointClassifier, PointSegmenter, SegHead
from .pointnet2 import FeaturePropagation, PointNet2, SetAbstraction
from .registry import create_model, list_models, register_model

__all__ = [
    "create_model", "list_models", "register_model", "PointNet2", "DGCNN",
    "EdgeConv", "SetAbstraction", "FeaturePropagation", "feature_knn", "heads",
    "ClsHead", "SegHead", "PointClassifier", "PointSegmenter", "ATTENTION",
    "build_attention", "shapenet_parts",
]
