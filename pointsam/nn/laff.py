r"""Lightweight attention feature fusion (LAFF) and its multi-level form.

From `"Lightweight Attentional Feature Fusion"
<https://arxiv.org/abs/2112.01532>`_ (Hu et al.), used in place of concatenation
to fuse several feature sets of the same points.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .. import ops
from .base import PointModule, WeightKind
from .common import Device, reset_children

__all__ = ["LAFF", "LAFFMultiLevel"]


class LAFF(PointModule):
    r"""Lightweight attention feature fusion of :math:`m` feature sets per point.

    Each input :math:`\mathbf{f}_i` is projected to ``out_channels``; head
    :math:`h` owns the channel slice :math:`[h D, (h+1) D)`,
    :math:`D = C_{out} / H`, and scores each input with a learned vector
    :math:`\mathbf{v}_h \in \mathbb{R}^D`:

    .. math::
        \mathbf{t}_i = \mathbf{W}_i \mathbf{f}_i + \mathbf{b}_i,\qquad
        a_{hi} = \mathrm{softmax}_i\big(\mathbf{v}_h^\top
        \tanh(\mathbf{t}_{i,h})\big),\qquad
        \mathbf{y}_h = \sum_{i=1}^{m} a_{hi}\, \mathbf{t}_{i,h}

    so the output is a convex combination of the projected inputs, per point
    and per head.

    Args:
        in_channels: Channels of each input, :math:`[C_1, \dots, C_m]`, m >= 1.
        out_channels: Output size :math:`C_{out}`, divisible by ``num_heads``.
            (default: 256)
        num_heads: Heads H. (default: 8)

    Shapes:
        - **input:** a list of m tensors :math:`(*, C_i)` with the same
          leading shape (usually :math:`(N, C_i)`)
        - **output:** :math:`(*, C_{out})`; with ``return_attention=True`` also
          ``{"a": (*, H, m)}`` (sums to 1 over the last dimension)

    Example:
        >>> laff = LAFF([16, 32], 64, num_heads=4)
        >>> out, attn = laff([torch.randn(10, 16), torch.randn(10, 32)],
        ...                  return_attention=True)
        >>> out.shape, attn["a"].shape
        (torch.Size([10, 64]), torch.Size([10, 4, 2]))
    """

    weight_kinds = {"a": WeightKind.FUSION}  # [*, H, m]

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, *,
                 num_heads: int = 8, device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        in_channels = [in_channels] if isinstance(in_channels, int) else list(
            in_channels)
        if len(in_channels) < 1:
            raise ValueError("LAFF needs at least one input")
        for c in in_channels:
            ops.check_positive_int(c, "in_channels")
        ops.check_positive_int(out_channels, "out_channels")
        ops.check_positive_int(num_heads, "num_heads")
        if out_channels % num_heads:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by "
                             f"num_heads ({num_heads})")
        dd = {"device": device, "dtype": dtype}
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_heads = num_heads
        self.head_dim = out_channels // num_heads
        self.projs = nn.ModuleList(nn.Linear(c, out_channels, **dd)
                                   for c in in_channels)
        self.v = nn.Parameter(torch.empty(num_heads, self.head_dim, **dd))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)
        nn.init.normal_(self.v, std=self.head_dim ** -0.5)

    def forward(self, xs: Sequence[Tensor], *, return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        if isinstance(xs, Tensor) or len(xs) != len(self.projs):
            got = "a tensor" if isinstance(xs, Tensor) else f"{len(xs)} inputs"
            raise ValueError(f"LAFF expects a list of {len(self.projs)} tensors, "
                             f"got {got}")
        lead = xs[0].shape[:-1] if xs[0].dim() else None
        for i, (f, c) in enumerate(zip(xs, self.in_channels)):
            if not isinstance(f, Tensor) or f.dim() < 1 or f.size(-1) != c:
                shape = list(f.shape) if isinstance(f, Tensor) else type(f).__name__
                raise ValueError(f"LAFF input {i} must have {c} channels, got {shape}")
            if f.shape[:-1] != lead:
                raise ValueError(f"LAFF inputs differ in leading shape: input {i} is "
                                 f"{list(f.shape)}, input 0 is {list(xs[0].shape)}")
        t = torch.stack([p(f) for p, f in zip(self.projs, xs)], dim=-2)  # [*, m, C]
        t = t.unflatten(-1, (self.num_heads, self.head_dim))  # [*, m, H, D]
        score = (torch.tanh(t) * self.v).sum(-1)  # [*, m, H]
        if score.dtype in (torch.float16, torch.bfloat16):
            score = score.float()
        a = score.softmax(dim=-2).to(t.dtype)  # [*, m, H]
        out = (a.unsqueeze(-1) * t).sum(-3).flatten(-2)  # [*, C_out]
        attn = {"a": a.transpose(-1, -2)} if want else None  # [*, H, m]
        return self.finish(out, attn, return_attention)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, num_heads={self.num_heads}"


class LAFFMultiLevel(PointModule):
    r"""Bottom-up LAFF fusion of per-level features, in place of concatenation.

    For level features :math:`\mathbf{f}_1, \dots, \mathbf{f}_L` (DGCNN's EdgeConv
    outputs, PointNet++ MSG scales), the fused feature grows from the bottom:

    .. math::
        \mathbf{y}_1 = \mathbf{W}_1 \mathbf{f}_1 + \mathbf{b}_1,\qquad
        \mathbf{y}_l = \mathrm{LAFF}_l(\mathbf{y}_{l-1}, \mathbf{f}_l),
        \quad l = 2 \dots L

    and the output is :math:`\mathbf{y}_L`. Each step is a :class:`LAFF` of two
    inputs, whose weights say how much a point keeps from the lower levels.

    Args:
        in_channels: Channels per level :math:`[C_1, \dots, C_L]`, L >= 2.
        out_channels: Output size. (default: 256)
        num_heads: Heads of each LAFF. (default: 8)

    Shapes:
        - **input:** list of L tensors :math:`(N, C_l)`
        - **output:** :math:`(N, C_{out})`; with ``return_attention=True`` also
          ``{"a": (N, L-1, H, 2)}`` (step l-2 mixes :math:`\mathbf{y}_{l-1}`
          (index 0) and :math:`\mathbf{f}_l` (index 1))

    Example:
        >>> fuse = LAFFMultiLevel([64, 64, 128], 128, num_heads=4)
        >>> feats = [torch.randn(20, 64), torch.randn(20, 64), torch.randn(20, 128)]
        >>> out, attn = fuse(feats, return_attention=True)
        >>> out.shape, attn["a"].shape
        (torch.Size([20, 128]), torch.Size([20, 2, 4, 2]))
    """

    weight_kinds = {"a": WeightKind.LEVELS}  # [N, L-1, H, 2]

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256, *,
                 num_heads: int = 8, device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        in_channels = list(in_channels)
        if len(in_channels) < 2:
            raise ValueError(f"LAFFMultiLevel needs at least 2 levels, got "
                             f"{len(in_channels)}")
        dd = {"device": device, "dtype": dtype}
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_heads = num_heads
        self.stem = nn.Linear(in_channels[0], out_channels, **dd)
        self.fuse = nn.ModuleList(
            LAFF([out_channels, c], out_channels, num_heads=num_heads, **dd)
            for c in in_channels[1:])
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, xs: Sequence[Tensor], *, return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        if isinstance(xs, Tensor) or len(xs) != len(self.in_channels):
            got = "a tensor" if isinstance(xs, Tensor) else f"{len(xs)} levels"
            raise ValueError(f"LAFFMultiLevel expects a list of "
                             f"{len(self.in_channels)} tensors, got {got}")
        if xs[0].dim() < 1 or xs[0].size(-1) != self.in_channels[0]:
            raise ValueError(f"LAFFMultiLevel level 0 must have "
                             f"{self.in_channels[0]} channels, got {list(xs[0].shape)}")
        y = self.stem(xs[0])  # [N, C_out]
        weights = []
        for f, lf in zip(xs[1:], self.fuse):
            if want:
                y, a = lf([y, f], return_attention=True)  # [N, C_out], [N, H, 2]
                weights.append(a["a"])
            else:
                y = lf([y, f])
        attn = {"a": torch.stack(weights, dim=-3)} if want else None  # [N, L-1, H, 2]
        return self.finish(y, attn, return_attention)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, num_heads={self.num_heads}"
