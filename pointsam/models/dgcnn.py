r"""DGCNN with attention per EdgeConv stage, dynamic or static graphs.

From `"Dynamic Graph CNN for Learning on Point Clouds"
<https://arxiv.org/abs/1801.07829>`_ (Wang et al., 2019). Ragged batches,
channels last; the feature-space kNN is batched per cloud
(:func:`pointsam.ops.feature_knn`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from ..nn import LAFFMultiLevel
from ..ops import feature_knn  # re-exported: pointsam.models.feature_knn
from .attention import AttentionSpec, apply_attention, build_attention
from .dgcnn_layers import EdgeConv, SpatialTransform
from .heads import ClsHead, PointClassifier, PointSegmenter, SegHead
from .registry import register_model
from .shapenet_parts import NUM_CATEGORIES, NUM_PARTS

__all__ = ["feature_knn", "EdgeConv", "SpatialTransform", "DGCNN"]

_FUSIONS = ("concat", "laff")


class DGCNN(nn.Module):
    r"""DGCNN backbone: EdgeConv stages on a dynamic (or static) kNN graph.

    From `"Dynamic Graph CNN" <https://arxiv.org/abs/1801.07829>`_. Stage l builds
    its graph in the feature space of its input (stage 1 on the coordinates), with
    dilation :math:`d_l`, applies :class:`EdgeConv`, then its attention module:

    .. math::
        \mathbf{x}^{(l)} = \mathrm{attn}_l\Big(\max_{j \in \mathcal{N}^{(d_l)}_k
        (i;\, \mathbf{x}^{(l-1)})} h_l\big([\mathbf{x}^{(l-1)}_i,\
        \mathbf{x}^{(l-1)}_j - \mathbf{x}^{(l-1)}_i]\big)\Big),\qquad
        \mathbf{e}_i = \sigma\big(\mathrm{BN}(\mathbf{W}_e\,
        \mathrm{fuse}(\mathbf{x}^{(1)}_i, \dots, \mathbf{x}^{(L)}_i))\big)

    fuse being concatenation (reference) or :class:`~pointsam.nn.LAFFMultiLevel`
    (same width). Output: classification :math:`[\max_i \mathbf{e}_i,
    \mathrm{mean}_i \mathbf{e}_i]` per cloud; segmentation :math:`[\max_{i'}
    \mathbf{e}_{i'},\ \mathbf{c}_b,\ \mathrm{fuse}_i]` per point, with
    :math:`\mathbf{c}_b` the embedded category one-hot (part segmentation).

    With ``static_graph=True`` one kNN on the coordinates (Open3D/SciPy on the
    CPU) serves every stage, so nothing is :math:`O(N^2)`: for large scans. The
    attention modules always get the coordinate kNN table (k nearest, computed
    once per forward and shared).

    Args:
        in_channels: Per-point features besides the coordinates (the first stage
            sees :math:`[\mathbf{p}, \mathbf{x}]`, :math:`3 + C_{in}`). (default: 0)
        channels: Per stage, the widths of its EdgeConv MLP.
            (default: ``((64,), (64,), (128,), (256,))``)
        k: Neighbours per point. (default: 20)
        emb_channels: Width :math:`C_e` of the embedding after fusion. (default: 1024)
        dilation: One rate for all stages or one per stage (e.g.
            ``ops.hdc_rates(4)``). (default: 1)
        static_graph: Build the graph once on the coordinates. (default: ``False``)
        fusion: ``"concat"`` or ``"laff"``. (default: ``"concat"``)
        fusion_heads: Heads of the LAFF fusion. (default: 8)
        task: ``"cls"`` (pooled output) or ``"seg"`` (per point). (default: ``"cls"``)
        num_categories: Categories of the one-hot (part segmentation), 0 for none.
        category_channels: Width of the embedded one-hot. (default: 64)
        attention: Attention per stage (:mod:`pointsam.models.attention`).
        negative_slope: LeakyReLU slope. (default: 0.2)
        spatial_transform: Start with :class:`SpatialTransform` (the reference
            part segmenter's 3x3 transform net): the first stage and its graph
            see the transformed coordinates; attention keeps the original ones.
            (default: ``False``)

    Shapes:
        - **input:** x :math:`(N, C_{in})` or ``None``, pos :math:`(N, 3)`, batch
          :math:`(N)` sorted, category :math:`(B)` (part segmentation)
        - **output:** :math:`(B, 2 C_e)` (cls) or :math:`(N, C_e + C_{cat} +
          \sum_l C_l)` (seg)

    Example:
        >>> net = DGCNN(channels=[[16], [32]], k=4, emb_channels=64,
        ...             dilation=[1, 2], attention=[None, "cbam"]).eval()
        >>> net(None, torch.randn(50, 3), torch.tensor([0] * 20 + [1] * 30)).shape
        torch.Size([2, 128])
    """

    def __init__(self, in_channels: int = 0, *,
                 channels: Sequence[Sequence[int]] = ((64,), (64,), (128,), (256,)),
                 k: int = 20, emb_channels: int = 1024,
                 dilation: int | Sequence[int] = 1, static_graph: bool = False,
                 fusion: str = "concat", fusion_heads: int = 8, task: str = "cls",
                 num_categories: int = 0, category_channels: int = 64,
                 attention: AttentionSpec = None,
                 negative_slope: float = 0.2, spatial_transform: bool = False,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 0:
            raise ValueError(
                f"in_channels must be an integer >= 0, got {in_channels!r}")
        if task not in ("cls", "seg"):
            raise ValueError(f"unknown task {task!r}; choose from ('cls', 'seg')")
        if fusion not in _FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose from {_FUSIONS}")
        ops.check_positive_int(k, "k")
        ops.check_positive_int(emb_channels, "emb_channels")
        chans = [list(c) if isinstance(c, (list, tuple)) else [c] for c in channels]
        if not chans:
            raise ValueError("DGCNN needs at least one stage")
        n = len(chans)
        rates = [dilation] * n if isinstance(dilation, int) else list(dilation)
        if len(rates) != n:
            raise ValueError(f"dilation has {len(rates)} entries but the backbone has "
                             f"{n} stages; give one int or one rate per stage")
        for r in rates:
            ops.check_positive_int(r, "dilation")
        self.in_channels, self.k, self.dilation = in_channels, k, rates
        self.static_graph, self.task, self.fusion = static_graph, task, fusion
        self.num_categories = num_categories
        widths = [c[-1] for c in chans]
        attn = build_attention(attention, widths, n)
        dd = {"device": device, "dtype": dtype}
        self.stages = nn.ModuleList()
        c = 3 + in_channels
        for ch, a in zip(chans, attn):
            self.stages.append(EdgeConv(c, ch, negative_slope=negative_slope, attn=a,
                                        **dd))
            c = ch[-1]
        self.spatial_transform = (SpatialTransform(negative_slope, **dd)
                                  if spatial_transform else None)
        total = sum(widths)
        self.fuse = (LAFFMultiLevel(widths, total, num_heads=fusion_heads, **dd)
                     if fusion == "laff" and n > 1 else None)
        act = partial(nn.LeakyReLU, negative_slope)
        self.emb = nn.Sequential(nn.Linear(total, emb_channels, bias=False, **dd),
                                 nn.BatchNorm1d(emb_channels, **dd), act())
        self.category = None
        if num_categories:
            self.category = nn.Sequential(
                nn.Linear(num_categories, category_channels, bias=False, **dd),
                nn.BatchNorm1d(category_channels, **dd), act())
        if task == "cls":
            self.out_channels = 2 * emb_channels
        else:
            self.out_channels = emb_channels + total + (
                category_channels if num_categories else 0)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def forward(self, x: Tensor | None, pos: Tensor, batch: Tensor | None = None, *,
                category: Tensor | None = None,
                batch_size: int | None = None) -> Tensor:
        if not ops.is_trusted():  # called directly: this is the boundary
            ops.check_pos(pos, "pos")
            ops.check_batch(batch, pos.size(0), "batch")
        batch = ops.default_batch(batch, pos)  # [N]
        b = ops.batch_size_of(batch, batch_size)
        if self.in_channels:
            if x is None:
                raise ValueError(f"x is required: in_channels={self.in_channels}")
            ops.check_features(x, pos.size(0), "x", channels=self.in_channels)
        with ops.trusted():  # validated: the stages and their ops do not check again
            return self._forward(x, pos, batch, category, b)

    def _forward(self, x: Tensor | None, pos: Tensor, batch: Tensor,
                 category: Tensor | None, b: int) -> Tensor:
        # one coordinate kNN per forward: stage 1, static stages, all attention
        d_max = max(self.dilation) if self.static_graph else self.dilation[0]
        cidx, cmask = ops.knn(pos, self.k * d_max, batch, batch_size=b)  # [N, k d]
        a_idx, a_mask = cidx[:, :self.k], cmask[:, :self.k]  # [N, k]
        p_in = pos
        if self.spatial_transform is not None:
            p_in, _ = self.spatial_transform(pos, a_idx, batch, b)  # [N, 3]
            # the first graph on the transformed coordinates, as the reference
            cidx0, cmask0 = ops.knn(p_in, self.k * self.dilation[0], batch,
                                    batch_size=b)  # [N, k d_0]
        h = torch.cat([p_in, x], dim=-1) if self.in_channels else p_in  # [N, 3 + C]
        levels = []
        for i, stage in enumerate(self.stages):
            if i == 0 and self.spatial_transform is not None:
                nbr, _ = ops.dilate(cidx0, cmask0, self.k, self.dilation[0])  # [N, k]
            elif i == 0 or self.static_graph:
                nbr, _ = ops.dilate(cidx, cmask, self.k, self.dilation[i])  # [N, k]
            else:
                nbr, _ = ops.feature_knn(h, self.k, batch, dilation=self.dilation[i],
                                         batch_size=b)  # [N, k]
            h = stage(h, nbr)  # [N, C_l]
            h = apply_attention(stage.attn, h, pos, batch, a_idx, a_mask)
            levels.append(h)
        if self.fuse is not None:
            fused = self.fuse(levels)  # [N, sum C_l]
        else:
            fused = torch.cat(levels, dim=-1)  # [N, sum C_l]
        e = self.emb(fused)  # [N, C_e]
        if self.task == "cls":
            return torch.cat([ops.segment_max(e, batch, b),
                              ops.segment_mean(e, batch, b)], dim=-1)  # [B, 2 C_e]
        parts = [ops.segment_max(e, batch, b)[batch]]  # [N, C_e]
        if self.category is not None:
            if category is None:
                raise ValueError("category [B] is required for part segmentation "
                                 f"(num_categories={self.num_categories})")
            onehot = F.one_hot(category.long(), self.num_categories).to(e.dtype)
            parts.append(self.category(onehot)[batch])  # [N, C_cat]
        parts.append(fused)
        return torch.cat(parts, dim=-1)  # [N, C_out]

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, k={self.k}, "
                f"dilation={self.dilation}, static_graph={self.static_graph}, "
                f"fusion={self.fusion!r}, task={self.task!r}")


# ----------------------------------------------------------------------------
# registered models
# ----------------------------------------------------------------------------

_LRELU: Callable[[], nn.Module] = partial(nn.LeakyReLU, 0.2)


def _cls(num_classes: int, kw: dict[str, Any], head: Sequence[int],
         **defaults: Any) -> PointClassifier:
    head = kw.pop("head_channels", head)
    dropout = kw.pop("dropout", 0.5)
    backbone = DGCNN(**{**defaults, **kw, "task": "cls"})
    return PointClassifier(backbone, ClsHead(
        backbone.out_channels, num_classes, hidden_channels=head, dropout=dropout,
        act_layer=_LRELU, bias=False))


def _seg(num_classes: int, kw: dict[str, Any], head: Sequence[int],
         **defaults: Any) -> PointSegmenter:
    head = kw.pop("head_channels", head)
    dropout = kw.pop("dropout", 0.5)
    backbone = DGCNN(**{**defaults, **kw, "task": "seg"})
    return PointSegmenter(backbone, SegHead(
        backbone.out_channels, num_classes, hidden_channels=head, dropout=dropout,
        act_layer=_LRELU, bias=False))


_SEG_CH = ((64, 64), (64, 64), (64,))
_LITE_CH = ((32,), (32,), (64,))


@register_model
def dgcnn_cls(num_classes: int = 40, **kwargs: Any) -> PointClassifier:
    """DGCNN classifier (k 20, EdgeConv 64/64/128/256, 1024-d embedding; ~1.81M)."""
    return _cls(num_classes, kwargs, (512, 256), k=20, emb_channels=1024)


@register_model
def dgcnn_lite_cls(num_classes: int = 10, **kwargs: Any) -> PointClassifier:
    """Narrow DGCNN classifier for CPU training (k 10, 32/32/64, 256-d)."""
    return _cls(num_classes, kwargs, (128,), channels=_LITE_CH, k=10,
                emb_channels=256)


@register_model
def dgcnn_partseg(num_classes: int = NUM_PARTS, num_categories: int = NUM_CATEGORIES,
                  **kwargs: Any) -> PointSegmenter:
    """DGCNN part segmenter (3x3 transform net, two-layer EdgeConvs, category
    one-hot; ShapeNetPart; ~1.46M parameters as the reference)."""
    return _seg(num_classes, kwargs, (256, 256, 128), channels=_SEG_CH, k=40,
                emb_channels=1024, num_categories=num_categories,
                spatial_transform=True)


@register_model
def dgcnn_lite_partseg(num_classes: int = NUM_PARTS,
                       num_categories: int = NUM_CATEGORIES,
                       **kwargs: Any) -> PointSegmenter:
    """Narrow DGCNN part segmenter for CPU demos and tests."""
    return _seg(num_classes, kwargs, (64,), channels=((32,), (32,), (32,)), k=10,
                emb_channels=256, num_categories=num_categories,
                category_channels=32)


@register_model
def dgcnn_semseg(num_classes: int = 19, **kwargs: Any) -> PointSegmenter:
    """DGCNN semantic segmenter (k 20; ``static_graph=True`` for whole scans)."""
    return _seg(num_classes, kwargs, (512, 256), channels=_SEG_CH, k=20,
                emb_channels=1024)


@register_model
def dgcnn_lite_semseg(num_classes: int = 19, **kwargs: Any) -> PointSegmenter:
    """Narrow DGCNN semantic segmenter on a static coordinate graph, for scans."""
    return _seg(num_classes, kwargs, (64,), channels=((32,), (32,), (32,)), k=10,
                emb_channels=256, static_graph=True)
