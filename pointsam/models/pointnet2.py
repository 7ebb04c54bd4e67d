r"""PointNet++ (SSG and MSG) with attention per set-abstraction stage.

From `"PointNet++: Deep Hierarchical Feature Learning on Point Sets in a Metric
Space" <https://arxiv.org/abs/1706.02413>`_ (Qi et al., 2017). Ragged batches,
channels last; sampling is :func:`pointsam.ops.fps` with its canonical start, so
the output does not depend on the order of the points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from ..nn import MLP, LAFFMultiLevel
from .attention import AttentionSpec, apply_attention, build_attention
from .heads import ClsHead, PointClassifier, PointSegmenter, SegHead
from .registry import register_model
from .shapenet_parts import NUM_CATEGORIES, NUM_PARTS

__all__ = ["SetAbstraction", "GlobalSetAbstraction", "FeaturePropagation", "PointNet2"]

_GROUPINGS = ("ball", "knn")
_FUSIONS = ("concat", "laff")


def _bn_mlp(channels: Sequence[int]) -> MLP:
    """Shared MLP with BatchNorm and ReLU after every layer (PointNet++'s convs)."""
    return MLP(list(channels), norm_layer=nn.BatchNorm1d, plain_last=False)


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


class SetAbstraction(nn.Module):
    r"""Set abstraction: FPS centres, grouping, shared MLP, max pool (+ attention).

    For centre :math:`i` (sampled by FPS) and each scale :math:`s` with neighbours
    :math:`\mathcal{N}_s(i)` (ball of radius :math:`r_s`, capped at the
    :math:`k_s` nearest, or the :math:`k_s` nearest):

    .. math::
        \mathbf{f}^{(s)}_i = \max_{j \in \mathcal{N}_s(i)}
        h_s\big([\mathbf{x}_j,\ \mathbf{p}_j - \mathbf{p}_i]\big),\qquad
        \mathbf{x}'_i = \mathrm{fuse}(\mathbf{f}^{(1)}_i, \dots, \mathbf{f}^{(S)}_i)

    with fuse the concatenation (MSG reference) or :class:`~pointsam.nn.LAFFMultiLevel`
    (output width the sum of the scales' widths). Then, if given, the stage's
    attention runs on the centres with their kNN table (computed once here).

    Args:
        in_channels: Feature size :math:`C_{in}` of ``x`` (0: no features).
        mlps: Per scale, the widths of :math:`h_s` (after the input width).
        sample: Centres per cloud (int, ``min(sample, n_b)``) or a ratio in (0, 1].
        radii: Per scale, the ball radius in the units of ``pos`` (metres); ignored
            with ``grouping="knn"``.
        ks: Per scale, the neighbour cap :math:`k_s`.
        grouping: ``"ball"`` (reference) or ``"knn"``. (default: ``"ball"``)
        fusion: ``"concat"`` or ``"laff"`` for several scales. (default: ``"concat"``)
        fusion_heads: Heads of the LAFF fusion. (default: 8)
        attn: Attention module applied to the output (width kept), or ``None``.
        attn_k: Neighbours of the attention's table. (default: 16)

    Shapes:
        - **input:** x :math:`(N, C_{in})` or ``None``, pos :math:`(N, 3)`,
          batch :math:`(N)`
        - **output:** ``(x', pos', batch')``, :math:`(S, C_{out})`, :math:`(S, 3)`,
          :math:`(S)` with :math:`S = \sum_b s_b` centres

    Example:
        >>> sa = SetAbstraction(0, [[16, 32]], sample=8, radii=[0.5], ks=[4]).eval()
        >>> x, p, b = sa(None, torch.randn(40, 3), torch.tensor([0] * 20 + [1] * 20))
        >>> x.shape, p.shape, b.bincount().tolist()
        (torch.Size([16, 32]), torch.Size([16, 3]), [8, 8])
    """

    def __init__(self, in_channels: int, mlps: Sequence[Sequence[int]], *,
                 sample: int | float, radii: Sequence[float] | None,
                 ks: Sequence[int], grouping: str = "ball", fusion: str = "concat",
                 fusion_heads: int = 8, attn: nn.Module | None = None,
                 attn_k: int = 16) -> None:
        super().__init__()
        if grouping not in _GROUPINGS:
            raise ValueError(f"unknown grouping {grouping!r}; choose from {_GROUPINGS}")
        if fusion not in _FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose from {_FUSIONS}")
        mlps = [list(m) for m in mlps]
        ks = list(ks)
        if grouping == "ball":
            if radii is None:
                raise ValueError("grouping='ball' needs radii, one per scale")
            radii = [float(r) for r in radii]
            if len(radii) != len(mlps) or any(not r > 0 for r in radii):
                raise ValueError(f"radii must be {len(mlps)} positive numbers (one "
                                 f"per scale), got {radii}")
        if len(ks) != len(mlps):
            raise ValueError(f"ks has {len(ks)} entries for {len(mlps)} scales")
        for k in ks:
            ops.check_positive_int(k, "k")
        if isinstance(sample, float):
            if not 0.0 < sample <= 1.0:
                raise ValueError(f"sample ratio must be in (0, 1], got {sample}")
        else:
            ops.check_positive_int(sample, "sample")
        self.in_channels, self.sample, self.grouping = in_channels, sample, grouping
        self.radii = radii if grouping == "ball" else None
        self.ks, self.fusion, self.attn_k = ks, fusion, attn_k
        self.mlps = nn.ModuleList(_bn_mlp([in_channels + 3, *m]) for m in mlps)
        widths = [m[-1] for m in mlps]
        self.out_channels = sum(widths)
        self.fuse = (LAFFMultiLevel(widths, self.out_channels, num_heads=fusion_heads)
                     if fusion == "laff" and len(widths) > 1 else None)
        self.attn = attn

    def reset_parameters(self) -> None:
        for m in self.mlps:
            m.reset_parameters()
        if self.fuse is not None:
            self.fuse.reset_parameters()

    def forward(self, x: Tensor | None, pos: Tensor, batch: Tensor,
                batch_size: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        b = ops.batch_size_of(batch, batch_size)
        if isinstance(self.sample, float):
            idx = ops.fps(pos, batch, ratio=self.sample, batch_size=b)  # [S]
        else:
            idx = ops.fps(pos, batch, num=self.sample, batch_size=b)  # [S]
        centre, cbatch = pos[idx], batch[idx]  # [S, 3], [S]
        feats = []
        for s, mlp in enumerate(self.mlps):
            if self.radii is not None:
                nbr, mask = ops.radius(pos, self.radii[s], batch, query=centre,
                                       query_batch=cbatch,
                                       max_num_neighbors=self.ks[s], batch_size=b)
            else:
                nbr, mask = ops.knn(pos, self.ks[s], batch, query=centre,
                                    query_batch=cbatch, batch_size=b)
            # pad with the nearest (the centre itself), as the reference ball query
            nbr = torch.where(mask, nbr, nbr[:, :1])  # [S, K]
            h = pos[nbr] - centre.unsqueeze(1)  # [S, K, 3]
            if x is not None:
                h = torch.cat([x[nbr], h], dim=-1)  # [S, K, C_in + 3]
            feats.append(mlp(h).max(dim=1).values)  # [S, C_s]
        if self.fuse is not None:
            out = self.fuse(feats)  # [S, C_out]
        else:
            out = feats[0] if len(feats) == 1 else torch.cat(feats, dim=-1)  # [S, C]
        if self.attn is not None:
            a_idx, a_mask = ops.knn(centre, self.attn_k, cbatch, batch_size=b)
            out = apply_attention(self.attn, out, centre, cbatch, a_idx, a_mask)
        return out, centre, cbatch

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, sample={self.sample}, "
                f"grouping={self.grouping!r}, radii={self.radii}, ks={self.ks}, "
                f"fusion={self.fusion!r}")


class GlobalSetAbstraction(nn.Module):
    r"""The last set abstraction of a classifier: one group per cloud.

    .. math::
        \mathbf{g}_b = \max_{i \in b} h\big([\mathbf{x}_i, \mathbf{p}_i]\big)

    Args:
        in_channels: Feature size :math:`C_{in}`.
        mlp: Widths of :math:`h`.

    Shapes:
        - **input:** x :math:`(N, C_{in})`, pos :math:`(N, 3)`, batch :math:`(N)`
        - **output:** :math:`(B, C_{out})`

    Example:
        >>> g = GlobalSetAbstraction(4, [8, 16]).eval()
        >>> batch = torch.tensor([0] * 4 + [1] * 6)
        >>> g(torch.randn(10, 4), torch.randn(10, 3), batch).shape
        torch.Size([2, 16])
    """

    def __init__(self, in_channels: int, mlp: Sequence[int]) -> None:
        super().__init__()
        self.mlp = _bn_mlp([in_channels + 3, *mlp])
        self.out_channels = list(mlp)[-1]

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def forward(self, x: Tensor | None, pos: Tensor, batch: Tensor,
                batch_size: int | None = None) -> Tensor:
        b = ops.batch_size_of(batch, batch_size)
        h = pos if x is None else torch.cat([x, pos], dim=-1)  # [N, C_in + 3]
        return ops.segment_max(self.mlp(h), batch, b)  # [B, C_out]


class FeaturePropagation(nn.Module):
    r"""Feature propagation: inverse-distance interpolation over the 3 nearest
    coarse points, concatenated with the skip features, then a shared MLP.

    .. math::
        \tilde{\mathbf{x}}_i = \frac{\sum_{j \in \mathcal{N}_3(i)} w_{ij}
        \mathbf{x}_j}{\sum_{j \in \mathcal{N}_3(i)} w_{ij}},\quad
        w_{ij} = \frac{1}{\|\mathbf{p}_i - \mathbf{p}_j\|^2 + 10^{-8}},\qquad
        \mathbf{x}'_i = h\big([\tilde{\mathbf{x}}_i, \mathbf{s}_i]\big)

    Args:
        in_channels: Coarse feature size plus skip feature size.
        mlp: Widths of :math:`h`.
        k: Coarse neighbours interpolated. (default: 3)

    Shapes:
        - **input:** coarse x :math:`(S, C)`, pos :math:`(S, 3)`, batch :math:`(S)`;
          skip :math:`(N, C_{skip})` or ``None``, fine pos :math:`(N, 3)`,
          fine batch :math:`(N)`
        - **output:** :math:`(N, C_{out})`

    Example:
        >>> fp = FeaturePropagation(8 + 2, [16]).eval()
        >>> b5, b20 = torch.zeros(5).long(), torch.zeros(20).long()
        >>> fp(torch.randn(5, 8), torch.randn(5, 3), b5,
        ...    torch.randn(20, 2), torch.randn(20, 3), b20).shape
        torch.Size([20, 16])
    """

    def __init__(self, in_channels: int, mlp: Sequence[int], *, k: int = 3) -> None:
        super().__init__()
        self.mlp = _bn_mlp([in_channels, *mlp])
        self.in_channels, self.out_channels, self.k = in_channels, list(mlp)[-1], k

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor, skip: Tensor | None,
                pos_fine: Tensor, batch_fine: Tensor,
                batch_size: int | None = None) -> Tensor:
        idx, mask = ops.knn(pos, self.k, batch, query=pos_fine, query_batch=batch_fine,
                            batch_size=batch_size)  # [N, k]
        # weights in at least float32: 1 / 1e-8 overflows float16 (inf / inf = NaN)
        wt = torch.promote_types(pos.dtype, torch.float32)
        d2 = ((pos_fine.to(wt).unsqueeze(1) - pos.to(wt)[idx]) ** 2).sum(-1)  # [N, k]
        w = (1.0 / (d2 + 1e-8)).masked_fill(~mask, 0.0)
        w = w / w.sum(dim=1, keepdim=True)  # [N, k]
        h = (w.unsqueeze(-1).to(x.dtype) * x[idx]).sum(dim=1)  # [N, C]
        if skip is not None:
            h = torch.cat([h, skip], dim=-1)  # [N, C + C_skip]
        return self.mlp(h)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, k={self.k}"


def _stage_cfg(cfg: Mapping[str, Any], i: int) -> dict[str, Any]:
    known = {"sample", "radius", "k", "mlp"}
    bad = set(cfg) - known
    if bad or "mlp" not in cfg or "sample" not in cfg:
        raise ValueError(f"stage {i}: a stage is a dict with keys {sorted(known)} "
                         f"(sample and mlp required), got {sorted(cfg)}")
    mlp = list(cfg["mlp"])
    msg = bool(mlp) and isinstance(mlp[0], (list, tuple))
    mlps = [list(m) for m in mlp] if msg else [mlp]
    ks = _as_list(cfg.get("k", 32))
    ks = ks * len(mlps) if len(ks) == 1 else ks
    radii = cfg.get("radius")
    if radii is not None:
        radii = _as_list(radii)
        radii = radii * len(mlps) if len(radii) == 1 else radii
    return {"sample": cfg["sample"], "radii": radii, "ks": ks, "mlps": mlps}


class PointNet2(nn.Module):
    r"""PointNet++ backbone: set abstractions, then a global pool or a decoder.

    From `"PointNet++" <https://arxiv.org/abs/1706.02413>`_. The encoder is a list
    of :class:`SetAbstraction` stages (SSG: one scale each; MSG: several, fused by
    concatenation or LAFF), each followed by its attention module when given.
    Then:

    - classification (``global_mlp`` given, no ``decoder``):
      :class:`GlobalSetAbstraction`, output :math:`(B, C)`;
    - segmentation (``decoder`` given): :class:`FeaturePropagation` from the
      deepest level back to the input points, output :math:`(N, C)`. With
      ``global_mlp`` the global feature is the deepest level (part segmentation);
      with ``num_categories > 0`` the category one-hot, ``pos`` and ``x`` are the
      skip features of the last propagation, as in the reference part segmenter.

    .. math::
        (\mathbf{x}^{(l)}, \mathbf{p}^{(l)}) = \mathrm{attn}_l\big(
        \mathrm{SA}_l(\mathbf{x}^{(l-1)}, \mathbf{p}^{(l-1)})\big),\qquad
        \mathbf{x}^{(l-1)} \leftarrow \mathrm{FP}_l\big(\mathbf{x}^{(l)},
        \mathbf{x}^{(l-1)}\big)

    Args:
        in_channels: Per-point input features (0: coordinates only; normals: 3).
        stages: One dict per set abstraction: ``sample`` (centres per cloud, or a
            ratio in (0, 1]), ``radius`` (metres; a list for MSG), ``k`` (cap per
            scale), ``mlp`` (widths; a list of lists for MSG).
        global_mlp: Widths of the global set abstraction, or ``None``.
            (default: ``(256, 512, 1024)``)
        decoder: Widths of each feature propagation, deepest first, one per level
            (``len(stages) + 1`` with ``global_mlp``, else ``len(stages)``), or
            ``None`` for classification. (default: ``None``)
        num_categories: Categories whose one-hot enters the decoder (part
            segmentation; 16 for ShapeNetPart), 0 for none. (default: 0)
        grouping: ``"ball"`` (reference) or ``"knn"`` (scale-free).
            (default: ``"ball"``)
        fusion: MSG scale fusion, ``"concat"`` or ``"laff"``. (default: ``"concat"``)
        fusion_heads: Heads of the LAFF fusion. (default: 8)
        attention: Attention per stage (see :mod:`pointsam.models.attention`), one
            entry per set abstraction (the global one excluded). (default: ``None``)
        attention_k: Neighbours of the attention's table: one for every stage,
            or a list with one per stage. (default: 16)

    Shapes:
        - **input:** x :math:`(N, C_{in})` or ``None``, pos :math:`(N, 3)`, batch
          :math:`(N)` sorted, category :math:`(B)` (part segmentation)
        - **output:** :math:`(B, C_{out})` (classification) or :math:`(N, C_{out})`

    Example:
        >>> net = PointNet2(stages=[dict(sample=16, radius=0.5, k=8, mlp=[16, 32])],
        ...                 global_mlp=[32, 64], attention="cbam").eval()
        >>> net(None, torch.randn(60, 3), torch.tensor([0] * 25 + [1] * 35)).shape
        torch.Size([2, 64])
    """

    def __init__(self, in_channels: int = 0, *,
                 stages: Sequence[Mapping[str, Any]] = (
                     {"sample": 512, "radius": 0.2, "k": 32, "mlp": (64, 64, 128)},
                     {"sample": 128, "radius": 0.4, "k": 64, "mlp": (128, 128, 256)}),
                 global_mlp: Sequence[int] | None = (256, 512, 1024),
                 decoder: Sequence[Sequence[int]] | None = None,
                 num_categories: int = 0, grouping: str = "ball",
                 fusion: str = "concat", fusion_heads: int = 8,
                 attention: AttentionSpec = None,
                 attention_k: int | Sequence[int] = 16) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 0:
            raise ValueError(
                f"in_channels must be an integer >= 0, got {in_channels!r}")
        cfgs = [_stage_cfg(s, i) for i, s in enumerate(stages)]
        if not cfgs:
            raise ValueError("PointNet2 needs at least one stage")
        if global_mlp is None and decoder is None:
            raise ValueError("give global_mlp (classification) and/or decoder "
                             "(segmentation)")
        self.in_channels, self.num_categories = in_channels, num_categories
        widths, c = [], in_channels
        for cfg in cfgs:
            widths.append(sum(m[-1] for m in cfg["mlps"]))
        attn = build_attention(attention, widths, len(cfgs))
        ks = (list(attention_k) if isinstance(attention_k, (list, tuple))
              else [attention_k] * len(cfgs))
        if len(ks) != len(cfgs) or any(isinstance(k, bool) or not isinstance(k, int)
                                       or k < 1 for k in ks):
            raise ValueError(f"attention_k must be an integer >= 1 or one per stage "
                             f"({len(cfgs)}), got {attention_k!r}")
        self.stages = nn.ModuleList()
        for i, (cfg, a, ak) in enumerate(zip(cfgs, attn, ks)):
            try:
                sa = SetAbstraction(c, cfg["mlps"], sample=cfg["sample"],
                                    radii=cfg["radii"], ks=cfg["ks"], grouping=grouping,
                                    fusion=fusion, fusion_heads=fusion_heads, attn=a,
                                    attn_k=ak)
            except ValueError as e:
                raise ValueError(f"stage {i}: {e}") from None
            self.stages.append(sa)
            c = sa.out_channels
        self.global_sa = (GlobalSetAbstraction(c, global_mlp)
                          if global_mlp is not None else None)
        self.fp: nn.ModuleList | None = None
        if decoder is None:
            assert self.global_sa is not None
            self.out_channels = self.global_sa.out_channels
            return
        levels = [in_channels] + widths  # feature width per level
        if self.global_sa is not None:
            levels.append(self.global_sa.out_channels)
        decoder = [list(d) for d in decoder]
        if len(decoder) != len(levels) - 1:
            raise ValueError(f"decoder needs {len(levels) - 1} feature propagations "
                             f"(one per level), got {len(decoder)}")
        skip0 = in_channels + (num_categories + 3 if num_categories else 0)
        self.fp = nn.ModuleList()
        c = levels[-1]
        for i, mlp in enumerate(decoder):
            lvl = len(levels) - 2 - i  # the level propagated to
            skip = skip0 if lvl == 0 else levels[lvl]
            self.fp.append(FeaturePropagation(c + skip, mlp))
            c = mlp[-1]
        self.out_channels = c

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
            ops.check_features(x, pos.size(0), "x", channels=self.in_channels)
            if x is None:
                raise ValueError(f"x is required: in_channels={self.in_channels}")
        else:
            x = None
        with ops.trusted():  # validated: the stages and their ops do not check again
            return self._forward(x, pos, batch, category, b)

    def _forward(self, x: Tensor | None, pos: Tensor, batch: Tensor,
                 category: Tensor | None, b: int) -> Tensor:
        levels = [(x, pos, batch)]
        for sa in self.stages:
            levels.append(sa(*levels[-1], batch_size=b))
        if self.fp is None:
            assert self.global_sa is not None
            return self.global_sa(*levels[-1], batch_size=b)  # [B, C]
        if self.global_sa is not None:
            g = self.global_sa(*levels[-1], batch_size=b)  # [B, C]
            levels.append((g, pos.new_zeros(b, 3), torch.arange(b, device=pos.device)))
        if self.num_categories:
            if category is None:
                raise ValueError("category [B] is required for part segmentation "
                                 f"(num_categories={self.num_categories})")
            onehot = F.one_hot(category.long(), self.num_categories).to(pos.dtype)
            parts = [onehot[batch], pos] + ([x] if x is not None else [])
            skip0: Tensor | None = torch.cat(parts, dim=-1)  # [N, C_skip]
        else:
            skip0 = x
        h, p, bt = levels[-1]
        for i, fp in enumerate(self.fp):
            lvl = len(levels) - 2 - i
            skip, p_f, b_f = levels[lvl]
            if lvl == 0:
                skip = skip0
            h = fp(h, p, bt, skip, p_f, b_f, batch_size=b)  # [N_lvl, C]
            p, bt = p_f, b_f
        return h  # [N, C_out]


# ----------------------------------------------------------------------------
# registered models
# ----------------------------------------------------------------------------

_SSG = ({"sample": 512, "radius": 0.2, "k": 32, "mlp": (64, 64, 128)},
        {"sample": 128, "radius": 0.4, "k": 64, "mlp": (128, 128, 256)})
_MSG_CLS = ({"sample": 512, "radius": (0.1, 0.2, 0.4), "k": (16, 32, 128),
             "mlp": ((32, 32, 64), (64, 64, 128), (64, 96, 128))},
            {"sample": 128, "radius": (0.2, 0.4, 0.8), "k": (32, 64, 128),
             "mlp": ((64, 64, 128), (128, 128, 256), (128, 128, 256))})
_MSG_PART = ({"sample": 512, "radius": (0.1, 0.2, 0.4), "k": (32, 64, 128),
              "mlp": ((32, 32, 64), (64, 64, 128), (64, 96, 128))},
             {"sample": 128, "radius": (0.4, 0.8), "k": (64, 128),
              "mlp": ((128, 128, 256), (128, 196, 256))})
_SEM = ({"sample": 0.25, "radius": 0.1, "k": 32, "mlp": (32, 32, 64)},
        {"sample": 0.25, "radius": 0.2, "k": 32, "mlp": (64, 64, 128)},
        {"sample": 0.25, "radius": 0.4, "k": 32, "mlp": (128, 128, 256)},
        {"sample": 0.25, "radius": 0.8, "k": 32, "mlp": (256, 256, 512)})
_LITE = ({"sample": 256, "radius": 0.2, "k": 16, "mlp": (32, 32, 64)},
         {"sample": 64, "radius": 0.4, "k": 16, "mlp": (64, 64, 128)})
_LITE_SEM = ({"sample": 0.25, "k": 16, "mlp": (32, 32, 64)},
             {"sample": 0.25, "k": 16, "mlp": (64, 64, 128)},
             {"sample": 0.25, "k": 16, "mlp": (128, 128, 256)})


def _cls(num_classes: int, kw: dict[str, Any], head: Sequence[int],
         dropout: float, **defaults: Any) -> PointClassifier:
    head = kw.pop("head_channels", head)
    dropout = kw.pop("dropout", dropout)
    backbone = PointNet2(**{**defaults, **kw})
    return PointClassifier(backbone, ClsHead(backbone.out_channels, num_classes,
                                             hidden_channels=head, dropout=dropout))


def _seg(num_classes: int, kw: dict[str, Any], head: Sequence[int],
         dropout: float, **defaults: Any) -> PointSegmenter:
    head = kw.pop("head_channels", head)
    dropout = kw.pop("dropout", dropout)
    backbone = PointNet2(**{**defaults, **kw})
    return PointSegmenter(backbone, SegHead(backbone.out_channels, num_classes,
                                            hidden_channels=head, dropout=dropout))


@register_model
def pointnet2_ssg_cls(num_classes: int = 40, **kwargs: Any) -> PointClassifier:
    """PointNet++ SSG classifier (reference: 512/128 centres, r 0.2/0.4; ~1.47M)."""
    return _cls(num_classes, kwargs, (512, 256), 0.5, stages=_SSG,
                global_mlp=(256, 512, 1024))


@register_model
def pointnet2_msg_cls(num_classes: int = 40, **kwargs: Any) -> PointClassifier:
    """PointNet++ MSG classifier (three radii per stage, concatenated; ~1.74M)."""
    return _cls(num_classes, kwargs, (512, 256), 0.5, stages=_MSG_CLS,
                global_mlp=(256, 512, 1024))


@register_model
def pointnet2_lite_cls(num_classes: int = 10, **kwargs: Any) -> PointClassifier:
    """Narrow PointNet++ SSG classifier for CPU training (256/64 centres, k 16)."""
    return _cls(num_classes, kwargs, (128,), 0.5, stages=_LITE,
                global_mlp=(128, 256))


@register_model
def pointnet2_ssg_partseg(num_classes: int = NUM_PARTS,
                          num_categories: int = NUM_CATEGORIES,
                          **kwargs: Any) -> PointSegmenter:
    """PointNet++ SSG part segmenter (ShapeNetPart: 50 parts, 16 categories)."""
    return _seg(num_classes, kwargs, (128,), 0.5, stages=_SSG,
                global_mlp=(256, 512, 1024), num_categories=num_categories,
                decoder=((256, 256), (256, 128), (128, 128, 128)))


@register_model
def pointnet2_msg_partseg(num_classes: int = NUM_PARTS,
                          num_categories: int = NUM_CATEGORIES,
                          **kwargs: Any) -> PointSegmenter:
    """PointNet++ MSG part segmenter (reference radii 0.1/0.2/0.4 and 0.4/0.8)."""
    return _seg(num_classes, kwargs, (128,), 0.5, stages=_MSG_PART,
                global_mlp=(256, 512, 1024), num_categories=num_categories,
                decoder=((256, 256), (256, 128), (128, 128)))


@register_model
def pointnet2_lite_partseg(num_classes: int = NUM_PARTS,
                           num_categories: int = NUM_CATEGORIES,
                           **kwargs: Any) -> PointSegmenter:
    """Narrow PointNet++ part segmenter for CPU demos and tests."""
    return _seg(num_classes, kwargs, (64,), 0.5, stages=_LITE,
                global_mlp=(128, 256), num_categories=num_categories,
                decoder=((128, 128), (128, 64), (64, 64)))


@register_model
def pointnet2_ssg_semseg(num_classes: int = 19, **kwargs: Any) -> PointSegmenter:
    """PointNet++ SSG semantic segmenter (4 levels, ratio 1/4 each, r 0.1-0.8 m)."""
    return _seg(num_classes, kwargs, (128,), 0.5, stages=_SEM, global_mlp=None,
                decoder=((256, 256), (256, 256), (256, 128), (128, 128, 128)))


@register_model
def pointnet2_lite_semseg(num_classes: int = 19, **kwargs: Any) -> PointSegmenter:
    """Narrow PointNet++ semantic segmenter (kNN grouping, any scale) for scans."""
    return _seg(num_classes, kwargs, (64,), 0.5, stages=_LITE_SEM, global_mlp=None,
                grouping="knn", decoder=((256, 128), (128, 64), (64, 64)))
