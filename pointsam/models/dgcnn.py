r"""DGCNN with attention per EdgeConv stage, dynamic or static graphs.

From `"Dynamic Graph CNN for Learning on Point Clouds"
<https://arxiv.org/abs/1801.07829>`_ (Wang et al., 2019). Ragged batches,
channels last; the feature-space kNN is batched per cloud
(:func:`pointsam.ops.feature_knn`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from ..nn import LAFFMultiLevel
from ..nn.common import Device, reset_children
from ..nn.network import (
    bind_geometry,
    collect_geometry,
    dense_layout,
    from_dense_slots,
    network_mode,
    to_dense_slots,
    tracing,
)
from ..ops import feature_knn  # re-exported: pointsam.models.feature_knn
from .attention import AttentionSpec, apply_attention, build_attention
from .dgcnn_layers import EdgeConv, SpatialTransform
from .heads import ClsHead, PointClassifier, PointSegmenter, SegHead
from .registry import register_model
from .shapenet_parts import NUM_CATEGORIES, NUM_PARTS

__all__ = ["feature_knn", "dense_feature_knn", "EdgeConv", "SpatialTransform", "DGCNN"]

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
                 device: Device = None,
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
        reset_children(self)

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
        return self.network(x, pos, self.plan(pos, batch, batch_size=b),
                            category=category)

    def _dynamic(self, i: int) -> bool:
        """Whether stage i builds its graph inside the network."""
        if i == 0:
            return self.spatial_transform is not None
        return not self.static_graph

    def plan(self, pos: Tensor, batch: Tensor | None = None, *,
             batch_size: int | None = None) -> dict[str, Tensor]:
        r"""The geometry plan: every index that depends on ``pos``/``batch`` alone.

        Keys: ``batch`` :math:`(N)`, ``cloud`` :math:`(B)` (``arange(B)``),
        ``attn_idx`` / ``attn_mask`` :math:`(N, k)` (the coordinate kNN shared by
        every attention module), ``stages.<l>.nbr`` :math:`(N, k)` for the stages
        whose graph is on the coordinates (stage 1, or all with
        ``static_graph``), the attention modules' own tables
        (``stages.<l>.attn.*``) and, when a stage builds its graph in feature
        space, the per-cloud padding of the network's dense kNN: ``dense_slot``
        :math:`(N)`, ``dense_mask`` :math:`(B, W)`, ``dense_ptr`` :math:`(B)`.

        Shapes:
            - **input:** pos :math:`(N, 3)`, batch :math:`(N)` sorted (optional)
            - **output:** ``dict[str, Tensor]``
        """
        batch = ops.default_batch(batch, pos)  # [N]
        b = ops.batch_size_of(batch, batch_size)
        # one coordinate kNN: stage 1, static stages, all attention
        d_max = max(self.dilation) if self.static_graph else self.dilation[0]
        cidx, cmask = ops.knn(pos, self.k * d_max, batch, batch_size=b)  # [N, k d]
        plan = {"batch": batch, "cloud": torch.arange(b, device=pos.device),
                "attn_idx": cidx[:, :self.k], "attn_mask": cmask[:, :self.k]}
        for i, stage in enumerate(self.stages):
            if not self._dynamic(i):
                nbr, _ = ops.dilate(cidx, cmask, self.k, self.dilation[i])  # [N, k]
                plan[f"stages.{i}.nbr"] = nbr
            plan.update(collect_geometry(stage.attn, pos, batch, b,
                                         f"stages.{i}.attn"))
        if any(self._dynamic(i) for i in range(len(self.stages))):
            width = self.k * max(self.dilation)
            slot, mask = dense_layout(batch, b, min_width=width)  # [N], [B, W]
            counts = mask.sum(1)  # [B]
            plan["dense_slot"], plan["dense_mask"] = slot, mask
            plan["dense_ptr"] = counts.cumsum(0) - counts  # [B]
        return plan

    def _graph(self, h: Tensor, i: int, plan: dict[str, Tensor],
               b: int) -> Tensor:
        """Stage i's neighbours: from the plan, or a kNN in the space of ``h``."""
        if not self._dynamic(i):
            return plan[f"stages.{i}.nbr"]  # [N, k]
        d = self.dilation[i]
        if not tracing():  # eager: blocked, O(block) memory for any cloud size
            if i == 0:  # the transformed coordinates: the coordinate kNN
                cidx, cmask = ops.knn(h, self.k * d, plan["batch"], batch_size=b)
                return ops.dilate(cidx, cmask, self.k, d)[0]  # [N, k]
            return ops.feature_knn(h, self.k, plan["batch"], dilation=d,
                                   batch_size=b)[0]  # [N, k]
        return dense_feature_knn(h, self.k, d, plan["dense_slot"],
                                 plan["dense_mask"], plan["dense_ptr"])

    def network(self, x: Tensor | None, pos: Tensor, plan: dict[str, Tensor], *,
                category: Tensor | None = None) -> Tensor:
        r"""The network on a :meth:`plan`: EdgeConvs, attention, fusion, pooling.

        The dynamic graph (kNN in feature space) is part of the network. Eager,
        it is :func:`pointsam.ops.feature_knn` (blocked, any size); traced by
        ``torch.export``/``torch.compile`` it is :func:`dense_feature_knn`, one
        ``[B, W, W]`` distance matrix per forward: fine for ModelNet/ShapeNet
        clouds (1024-4096 points: 4-64 MB per cloud), but memory grows as
        :math:`W^2`, so past ~20k points per cloud (1.6 GB) export a
        ``static_graph=True`` model instead.

        Shapes:
            - **input:** x :math:`(N, C_{in})` or ``None``, pos :math:`(N, 3)`,
              plan from :meth:`plan`, category :math:`(B)` (part segmentation)
            - **output:** :math:`(B, 2 C_e)` (cls) or :math:`(N, C_{out})` (seg)
        """
        batch = plan["batch"]  # [N]
        b = plan["cloud"].size(0)
        a_idx, a_mask = plan["attn_idx"], plan["attn_mask"]  # [N, k] each
        # no checks inside (the plan is trusted), no search, no host sync
        # torch.compile: no ContextVar (it breaks the graph); modules see in_network
        trust = nullcontext() if torch.compiler.is_dynamo_compiling() \
            or ops.is_trusted() else ops.trusted()
        with trust, network_mode(b, bind_geometry(self, plan)):
            p_in = pos
            if self.spatial_transform is not None:
                p_in, _ = self.spatial_transform(pos, a_idx, batch, b)  # [N, 3]
            h = torch.cat([p_in, x], dim=-1) if self.in_channels else p_in
            levels = []
            for i, stage in enumerate(self.stages):
                h = stage(h, self._graph(h, i, plan, b))  # [N, C_l]
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

    @property
    def min_points(self) -> int:
        """The neighbourhood size of the first EdgeConv's kNN."""
        return int(self.k)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, k={self.k}, "
                f"dilation={self.dilation}, static_graph={self.static_graph}, "
                f"fusion={self.fusion!r}, task={self.task!r}")


def dense_feature_knn(h: Tensor, k: int, dilation: int, slot: Tensor,
                      mask: Tensor, ptr: Tensor) -> Tensor:
    r"""Per-cloud kNN in feature space as dense tensor ops (exportable).

    The clouds are padded to ``[B, W, C]`` through the plan's slots
    (:func:`pointsam.nn.network.dense_layout`, :math:`W \ge k d`), ranked by
    :math:`\|\mathbf{x}_j\|^2 - 2\,\mathbf{x}_i^\top\mathbf{x}_j` (padding
    columns :math:`+\infty`) with one ``baddbmm`` and ``topk``, then every d-th of
    the k d nearest is kept as :func:`pointsam.ops.dilate` does. The same
    neighbour sets as :func:`pointsam.ops.feature_knn`; memory
    :math:`O(B W^2)`, so it is for clouds of a few thousand points.

    Shapes:
        - **input:** h :math:`(N, C)`, slot :math:`(N)`, mask :math:`(B, W)`,
          ptr :math:`(B)` (first index of each cloud)
        - **output:** nbr_idx :math:`(N, k)` (masked picks repeat the nearest)
    """
    xf = h.detach().float()
    dense = to_dense_slots(xf, slot, mask)  # [B, W, C]
    sq = (dense * dense).sum(-1).masked_fill(~mask, float("inf"))  # [B, W]
    d = torch.baddbmm(sq.unsqueeze(1), dense, dense.transpose(1, 2),
                      alpha=-2.0)  # [B, W, W]
    dist, idx = d.topk(k * dilation, dim=-1, largest=False, sorted=True)  # [B, W, kd]
    idx = (idx + ptr.view(-1, 1, 1)).masked_fill(torch.isinf(dist), -1)
    table = from_dense_slots(idx, slot)  # [N, kd]
    valid = table >= 0  # [N, kd]
    if dilation == 1:
        return torch.where(valid, table, table[:, :1])  # [N, k]
    n_valid = valid.sum(1)  # [N]
    stride = ((n_valid - 1) // max(k - 1, 1)).clamp(min=1, max=dilation)  # [N]
    sel = torch.arange(k, device=h.device).unsqueeze(0) * stride.unsqueeze(1)
    sel = sel.clamp(max=k * dilation - 1)  # [N, k]
    nbr = table.gather(1, sel)  # [N, k]
    ok = (nbr >= 0) & (sel < n_valid.unsqueeze(1))
    return torch.where(ok, nbr, table[:, :1].expand_as(nbr))  # [N, k]


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
