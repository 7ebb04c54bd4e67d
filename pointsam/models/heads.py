r"""Heads and the model adapters that unpack a PyG ``Data``/``Batch``.

- :class:`ClsHead`: MLP on a pooled feature, :math:`(B, C) \to (B, \text{classes})`.
- :class:`SegHead`: per-point MLP, :math:`(N, C) \to (N, \text{classes})`.
- :class:`PointClassifier` / :class:`PointSegmenter`: ``backbone`` + ``head``; the
  only place where a ``Data``/``Batch`` is unpacked (STYLE.md section 5). They
  return logits; losses live in :mod:`pointsam.engine`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import ops
from ..nn.common import (
    Device,
    block_elements,
    fold_batch_norm,
    reset_children,
    run_folded,
)
from ..nn.network import tracing
from .base import PointModel

__all__ = ["ClsHead", "SegHead", "PointClassifier", "PointSegmenter", "unpack"]


def _mlp_layers(in_channels: int, hidden: Sequence[int], out_channels: int,
                dropout: float, act_layer: Callable[[], nn.Module],
                bias: bool, **dd: Any) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = in_channels
    for h in hidden:
        ops.check_positive_int(h, "hidden_channels")
        layers += [nn.Linear(c, h, bias=bias, **dd), nn.BatchNorm1d(h, **dd),
                   act_layer()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        c = h
    layers.append(nn.Linear(c, out_channels, **dd))
    return nn.Sequential(*layers)


class ClsHead(nn.Module):
    r"""Classification head: ``Linear -> BN -> act -> Dropout`` per hidden layer,
    then a linear classifier (the head of PointNet++ and DGCNN).

    .. math::
        \mathbf{h}_l = \mathrm{drop}(\sigma(\mathrm{BN}(\mathbf{W}_l
        \mathbf{h}_{l-1} + \mathbf{b}_l))),\qquad
        \mathbf{z} = \mathbf{W}_{out} \mathbf{h}_L + \mathbf{b}_{out}

    Args:
        in_channels: Size of the pooled feature :math:`C`.
        num_classes: Number of classes.
        hidden_channels: Widths of the hidden layers. (default: ``(512, 256)``)
        dropout: Dropout probability after each hidden layer. (default: 0.5)
        act_layer: Activation constructor. (default: ``nn.ReLU``)
        bias: Biases in the hidden linear layers (BN follows). (default: ``True``)
        fused: In eval mode, fold each BatchNorm into its Linear, ReLU in place,
            rows in cache-sized blocks (:meth:`folded`); ``False`` runs the plain
            layers, the reference. (default: ``True``)

    Shapes:
        - **input:** :math:`(B, C)`
        - **output:** :math:`(B, \text{classes})`

    Example:
        >>> ClsHead(64, 10, hidden_channels=(32,)).eval()(torch.randn(4, 64)).shape
        torch.Size([4, 10])
    """

    def __init__(self, in_channels: int, num_classes: int, *,
                 hidden_channels: Sequence[int] = (512, 256), dropout: float = 0.5,
                 act_layer: Callable[[], nn.Module] = nn.ReLU,
                 bias: bool = True, fused: bool = True,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        ops.check_positive_int(in_channels, "in_channels")
        ops.check_positive_int(num_classes, "num_classes")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.fused = fused
        self.mlp = _mlp_layers(in_channels, hidden_channels, num_classes, dropout,
                               act_layer, bias, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, x: Tensor) -> Tensor:
        layers = self.folded() if self.fused and not tracing() else None
        if layers is None:
            return self.mlp(x)
        rows = max(1, block_elements() // max(w.size(0) for w, _, _ in layers))
        if x.size(0) <= rows:
            return run_folded(x, layers)
        out = x.new_empty(x.size(0), self.num_classes)  # [N, classes]
        for a in range(0, x.size(0), rows):  # blocks of rows stay in cache
            out[a:a + rows] = run_folded(x[a:a + rows], layers)
        return out

    def folded(self) -> list[tuple[Tensor, Tensor | None, bool]] | None:
        """The eval-mode layers as ``(weight, bias, relu)`` with each BatchNorm
        folded into its Linear (dropout is the identity in eval mode), or
        ``None`` in training mode or for an activation other than ReLU."""
        if self.training:
            return None
        mods = list(self.mlp)
        out: list[tuple[Tensor, Tensor | None, bool]] = []
        i = 0
        while i < len(mods) - 1:  # Linear, BatchNorm1d, act[, Dropout]
            lin, norm, act = mods[i], mods[i + 1], mods[i + 2]
            wb = fold_batch_norm(lin, norm)
            if type(act) is not nn.ReLU or wb is None:
                return None
            out.append((*wb, True))
            i += 4 if isinstance(mods[i + 3], nn.Dropout) else 3
        last = mods[-1]
        assert isinstance(last, nn.Linear)
        out.append((last.weight, last.bias, False))
        return out

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.num_classes}"


class SegHead(ClsHead):
    r"""Per-point segmentation head, the same MLP applied to every point.

    .. math::
        \mathbf{z}_i = \mathrm{MLP}(\mathbf{h}_i)

    Args:
        in_channels: Per-point feature size :math:`C`.
        num_classes: Number of classes (parts).
        hidden_channels: Widths of the hidden layers. (default: ``(128,)``)
        dropout: Dropout after each hidden layer. (default: 0.5)
        act_layer: Activation constructor. (default: ``nn.ReLU``)
        bias: Biases in the hidden linear layers. (default: ``True``)
        fused: The eval fast path of :class:`ClsHead`. (default: ``True``)

    Shapes:
        - **input:** :math:`(N, C)`
        - **output:** :math:`(N, \text{classes})`

    Example:
        >>> SegHead(32, 5).eval()(torch.randn(100, 32)).shape
        torch.Size([100, 5])
    """

    def __init__(self, in_channels: int, num_classes: int, *,
                 hidden_channels: Sequence[int] = (128,), dropout: float = 0.5,
                 act_layer: Callable[[], nn.Module] = nn.ReLU,
                 bias: bool = True, fused: bool = True,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        dd = {"device": device, "dtype": dtype}
        super().__init__(in_channels, num_classes, hidden_channels=hidden_channels,
                         dropout=dropout, act_layer=act_layer, bias=bias,
                         fused=fused, **dd)


def unpack(data: Any = None, *, pos: Tensor | None = None, x: Tensor | None = None,
           batch: Tensor | None = None, category: Tensor | None = None
           ) -> tuple[Tensor | None, Tensor, Tensor, Tensor | None, int]:
    r"""``(x, pos, batch, category, batch_size)`` from a ``Data``/``Batch`` or tensors.

    ``batch`` defaults to one cloud; the number of clouds comes from
    ``data.num_graphs`` when present, else from ``batch``. This is a model's
    boundary: ``pos``/``batch`` (and ``batch_size``) are validated here, once;
    the model then runs its backbone inside :func:`pointsam.ops.trusted`.
    A ``batch`` that skips a cloud id (an empty cloud) is a ``ValueError``.
    """
    if data is not None:
        if pos is not None:
            raise ValueError("give either a Data/Batch or pos=..., not both")
        pos = getattr(data, "pos", None)
        x = getattr(data, "x", None)
        batch = getattr(data, "batch", None)
        category = getattr(data, "category", None)
    if pos is None:
        raise ValueError("the input has no pos: give a Data/Batch with pos [N, 3]")
    if not ops.is_trusted():  # a wrapping model that validated calls in trusted()
        ops.check_pos(pos, "pos")
        ops.check_batch(batch, pos.size(0), "batch")
    if batch is None:
        b = 1
    else:
        ng = getattr(data, "num_graphs", None) if data is not None else None
        b = ops.batch_size_of(batch, ng if isinstance(ng, int) else None)
    if batch is not None and batch.numel():
        _check_no_empty_cloud(batch, b)
    batch = ops.default_batch(batch, pos)  # [N]
    return x, pos, batch, category, b


def _check_no_empty_cloud(batch: Tensor, b: int) -> None:
    """Every cloud id 0..b-1 has a point: an empty cloud has no answer to give."""
    steps = batch[1:] - batch[:-1]  # [N - 1], >= 0 (sorted)
    if int(batch[0]) == 0 and not bool((steps > 1).any()) and int(batch[-1]) == b - 1:
        return
    present = set(torch.unique(batch).tolist())
    missing = [i for i in range(b) if i not in present]
    shown = ", ".join(map(str, missing[:8])) + (", ..." if len(missing) > 8 else "")
    raise ValueError(f"batch skips cloud id(s) {shown} of 0..{b - 1}: every cloud "
                     "needs at least one point (an empty cloud would get logits "
                     "that mean nothing)")


def _check_dtype(model: nn.Module, pos: Tensor, x: Tensor | None) -> None:
    """``pos`` (and ``x``) in the dtype of the model's weights (autocast aside)."""
    p = next(model.parameters(), None)
    if p is None or not p.is_floating_point() or torch.is_autocast_enabled(
            pos.device.type):
        return
    for name, t in (("pos", pos), ("x", x)):
        if t is not None and t.dtype != p.dtype:
            raise TypeError(f"{name} is {t.dtype} but the model's weights are "
                            f"{p.dtype}: convert the input ({name}.to({p.dtype})) "
                            "or the model (model.to(dtype))")


def _features(model: PointModel, x: Tensor | None, n: int) -> Tensor | None:
    c = model.in_channels
    if c == 0:
        if x is not None and not getattr(model, "_warned_unused_x", False):
            model._warned_unused_x = True  # once per model
            warnings.warn(f"the input has x [N, {x.size(-1) if x.dim() else 0}] "
                          "but the model was built without input features "
                          "(in_channels=0): x is ignored; build it with "
                          "in_channels=C to use it", UserWarning, stacklevel=3)
        return None  # features are used only when the model was built for them
    if x is None:
        raise ValueError(f"the model was built with in_channels={c} but the input "
                         f"has no x (per-point features [N, {c}])")
    ops.check_features(x, n, "x", channels=c)
    return x


class PointClassifier(PointModel):
    r"""A backbone that pools each cloud to one feature, plus a :class:`ClsHead`.

    ``forward(data)`` takes a PyG ``Data``/``Batch`` (``pos``, ``batch``, ``x``
    when the backbone has ``in_channels > 0``; otherwise ``x`` is ignored, with a
    warning the first time) or the same as keyword tensors, in the dtype of the
    weights, and returns logits :math:`(B, \text{classes})`.

    Example:
        >>> from pointsam.models import DGCNN
        >>> m = PointClassifier(DGCNN(channels=[[16]], k=4, emb_channels=32),
        ...                     ClsHead(64, 3, hidden_channels=(16,))).eval()
        >>> m(pos=torch.randn(30, 3), batch=torch.tensor([0] * 10 + [1] * 20)).shape
        torch.Size([2, 3])
    """

    task = "cls"

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def reset_parameters(self) -> None:
        reset_children(self)

    @property
    def in_channels(self) -> int:
        return int(self.backbone.in_channels)

    @property
    def num_classes(self) -> int:
        return int(self.head.num_classes)

    @property
    def min_points(self) -> int:
        return int(self.backbone.min_points)

    def forward(self, data: Any = None, **tensors: Tensor) -> Tensor:
        x, pos, batch, _, b = unpack(data, **tensors)
        x = _features(self, x, pos.size(0))
        _check_dtype(self, pos, x)
        with ops.trusted():  # validated above: the backbone does not check again
            return self.head(self.backbone(x, pos, batch, batch_size=b))  # [B, classes]

    def plan(self, pos: Tensor, batch: Tensor | None = None, *,
             batch_size: int | None = None) -> dict[str, Tensor]:
        """The backbone's geometry plan (DESIGN.md section 9)."""
        return self.backbone.plan(pos, batch, batch_size=batch_size)

    def network(self, x: Tensor | None, pos: Tensor, plan: dict[str, Tensor],
                category: Tensor | None = None) -> Tensor:
        """Logits from the backbone's network on a :meth:`plan` (exportable)."""
        return self.head(self.backbone.network(x, pos, plan, category=category))


class PointSegmenter(PointModel):
    r"""A backbone with per-point output, plus a :class:`SegHead`.

    For part segmentation (``num_categories > 0``) the input must carry
    ``category`` :math:`(B)` (the shape's category index); the backbone feeds its
    one-hot to the decoder. Returns logits :math:`(N, \text{classes})`, one row per
    input point. Restricting them to the category's parts at evaluation is
    :func:`pointsam.models.shapenet_parts.restrict_to_category`.

    Example:
        >>> from pointsam.models import DGCNN
        >>> bb = DGCNN(channels=[[16]], k=4, emb_channels=32, task="seg")
        >>> m = PointSegmenter(bb, SegHead(bb.out_channels, 4)).eval()
        >>> m(pos=torch.randn(30, 3)).shape
        torch.Size([30, 4])
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def reset_parameters(self) -> None:
        reset_children(self)

    @property
    def task(self) -> str:  # type: ignore[override]
        return "partseg" if self.num_categories else "semseg"

    @property
    def num_categories(self) -> int:
        return int(self.backbone.num_categories)

    in_channels = PointClassifier.in_channels
    num_classes = PointClassifier.num_classes
    min_points = PointClassifier.min_points

    def forward(self, data: Any = None, **tensors: Tensor) -> Tensor:
        x, pos, batch, category, b = unpack(data, **tensors)
        x = _features(self, x, pos.size(0))
        _check_dtype(self, pos, x)
        nc = self.num_categories
        if nc > 0:
            if category is None:
                raise ValueError(f"part segmentation needs the shape category: give "
                                 f"data.category, int64 [B] in [0, {nc})")
            category = torch.as_tensor(category, device=pos.device).long().flatten()
            if category.numel() != b:
                raise ValueError(f"category has {category.numel()} entries for {b} "
                                 f"clouds; expected one per cloud, int64 [B]")
            if bool(((category < 0) | (category >= nc)).any()):
                raise ValueError(f"category values must be in [0, {nc}), got "
                                 f"{sorted(set(category.tolist()))}")
        with ops.trusted():  # validated above: the backbone does not check again
            if nc > 0:
                feat = self.backbone(x, pos, batch, category=category, batch_size=b)
            else:
                feat = self.backbone(x, pos, batch, batch_size=b)
            return self.head(feat)  # [N, classes]

    plan = PointClassifier.plan
    network = PointClassifier.network
