r"""PointNet++ (SSG and MSG) with attention per set-abstraction stage.

From `"PointNet++: Deep Hierarchical Feature Learning on Point Sets in a Metric
Space" <https://arxiv.org/abs/1706.02413>`_ (Qi et al., 2017). Ragged batches,
channels last; sampling is :func:`pointsam.ops.fps` with its canonical start, so
the output does not depend on the order of the points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from ..nn.common import Device, reset_children
from ..nn.network import bind_geometry, network_mode
from .attention import AttentionSpec, build_attention
from .heads import ClsHead, PointClassifier, PointSegmenter, SegHead
from .pointnet2_layers import (
    FeaturePropagation,
    GlobalSetAbstraction,
    SetAbstraction,
)
from .registry import register_model
from .shapenet_parts import NUM_CATEGORIES, NUM_PARTS

__all__ = ["SetAbstraction", "GlobalSetAbstraction", "FeaturePropagation", "PointNet2"]


def _as_list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else [v]


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
                 attention_k: int | Sequence[int] = 16,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
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
        dd = {"device": device, "dtype": dtype}
        self.in_channels, self.num_categories = in_channels, num_categories
        self.grouping, self.fusion = grouping, fusion
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
                                    attn_k=ak, **dd)
            except ValueError as e:
                raise ValueError(f"stage {i}: {e}") from None
            self.stages.append(sa)
            c = sa.out_channels
        self.global_sa = (GlobalSetAbstraction(c, global_mlp, **dd)
                          if global_mlp is not None else None)
        self.fp: nn.ModuleList | None = None
        if decoder is None:
            assert self.global_sa is not None
            self.out_channels = self.global_sa.out_channels
        else:
            self.out_channels = self._build_decoder(decoder, widths, dd)
        self.reset_parameters()

    def _build_decoder(self, decoder: Sequence[Sequence[int]], widths: list[int],
                       dd: dict[str, Any]) -> int:
        in_channels, num_categories = self.in_channels, self.num_categories
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
            self.fp.append(FeaturePropagation(c + skip, mlp, **dd))
            c = mlp[-1]
        return c

    def reset_parameters(self) -> None:
        reset_children(self)

    @property
    def min_points(self) -> int:
        """The neighbourhood size of the first set abstraction (its largest scale)."""
        return max(self.stages[0].ks)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"stages={len(self.stages)}, grouping={self.grouping!r}, "
                f"fusion={self.fusion!r}, num_categories={self.num_categories}")

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
        return self.network(x, pos, self.plan(pos, batch, batch_size=b),
                            category=category)

    def plan(self, pos: Tensor, batch: Tensor | None = None, *,
             batch_size: int | None = None) -> dict[str, Tensor]:
        r"""The geometry plan: every index and weight, from ``pos``/``batch`` alone.

        Computed by :mod:`pointsam.ops` (any backend). Keys: ``batch`` :math:`(N)`,
        ``cloud`` :math:`(B)` (``arange(B)``, its length is the number of clouds);
        per stage l ``stages.<l>.idx`` :math:`(S_l)` (FPS centres, indices into
        level l - 1), ``stages.<l>.nbr<s>`` :math:`(S_l, K_s)` (grouping per scale),
        ``stages.<l>.attn_idx`` / ``attn_mask`` :math:`(S_l, k)` and the tables
        of attention modules that build their own neighbourhoods
        (``stages.<l>.attn.*``, :meth:`pointsam.nn.PointModule.plan_geometry`);
        per feature propagation i ``fp.<i>.idx`` / ``fp.<i>.w`` :math:`(N_l, 3)`
        (interpolation neighbours and normalised inverse-distance weights).

        Shapes:
            - **input:** pos :math:`(N, 3)`, batch :math:`(N)` sorted (optional)
            - **output:** ``dict[str, Tensor]``, int64 indices, bool masks,
              float weights
        """
        batch = ops.default_batch(batch, pos)  # [N]
        b = ops.batch_size_of(batch, batch_size)
        plan = {"batch": batch, "cloud": torch.arange(b, device=pos.device)}
        levels = [(pos, batch)]
        for i, sa in enumerate(self.stages):
            p, bt = levels[-1]
            sp = sa.plan(p, bt, b)
            plan.update({f"stages.{i}.{k}": v for k, v in sp.items()})
            idx = sp["idx"]
            levels.append((p[idx], bt[idx]))  # [S, 3], [S]
        if self.fp is None:
            return plan
        if self.global_sa is not None:
            levels.append((pos.new_zeros(b, 3), torch.arange(b, device=pos.device)))
        p, bt = levels[-1]
        for i, fp in enumerate(self.fp):
            p_f, b_f = levels[len(levels) - 2 - i]
            fpp = fp.plan(p, bt, p_f, b_f, b)
            plan[f"fp.{i}.idx"], plan[f"fp.{i}.w"] = fpp["idx"], fpp["w"]
            p, bt = p_f, b_f
        return plan

    def network(self, x: Tensor | None, pos: Tensor, plan: dict[str, Tensor], *,
                category: Tensor | None = None) -> Tensor:
        r"""The network on a :meth:`plan`: gathers, shared MLPs, segment max.

        Only tensor ops that ``torch.export`` and ONNX support; no search, no
        host sync, so the number of points (and of clouds, ``plan["cloud"]``)
        stays symbolic. ``model(...)`` is ``network(x, pos, plan(pos, batch))``.

        Shapes:
            - **input:** x :math:`(N, C_{in})` or ``None``, pos :math:`(N, 3)`,
              plan from :meth:`plan`, category :math:`(B)` (part segmentation)
            - **output:** :math:`(B, C_{out})` or :math:`(N, C_{out})`
        """
        batch = plan["batch"]  # [N]
        b = plan["cloud"].size(0)
        x = x if self.in_channels else None
        # no checks inside (the plan is trusted), no search, no host sync
        # torch.compile: no ContextVar (it breaks the graph); modules see in_network
        trust = nullcontext() if torch.compiler.is_dynamo_compiling() \
            or ops.is_trusted() else ops.trusted()
        with trust, network_mode(b, bind_geometry(self, plan)):
            levels = [(x, pos, batch)]
            for i, sa in enumerate(self.stages):
                sp = {k[len(f"stages.{i}."):]: v for k, v in plan.items()
                      if k.startswith(f"stages.{i}.")}
                levels.append(sa.network(*levels[-1], sp))
            if self.fp is None:
                assert self.global_sa is not None
                return self.global_sa.network(*levels[-1], b)  # [B, C]
            if self.global_sa is not None:
                g = self.global_sa.network(*levels[-1], b)  # [B, C]
                levels.append((g, pos, batch))  # positions unused past the plan
            if self.num_categories:
                if category is None:
                    raise ValueError("category [B] is required for part segmentation "
                                     f"(num_categories={self.num_categories})")
                onehot = F.one_hot(category.long(), self.num_categories).to(pos.dtype)
                parts = [onehot[batch], pos] + ([x] if x is not None else [])
                skip0: Tensor | None = torch.cat(parts, dim=-1)  # [N, C_skip]
            else:
                skip0 = x
            h = levels[-1][0]
            for i, fp in enumerate(self.fp):
                lvl = len(levels) - 2 - i
                skip = skip0 if lvl == 0 else levels[lvl][0]
                h = fp.network(h, skip, {"idx": plan[f"fp.{i}.idx"],
                                         "w": plan[f"fp.{i}.w"]})  # [N_lvl, C]
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
