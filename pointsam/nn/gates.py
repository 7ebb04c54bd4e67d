r"""CBAM gates for point clouds: channel gate, point (spatial) gate and both.

From `"CBAM: Convolutional Block Attention Module"
<https://arxiv.org/abs/1807.06521>`_ (Woo et al.). The channel gate pools each
cloud instead of each image; the spatial gate's 7x7 convolution over the
[mean, max] map becomes a learned continuous kernel over the k nearest
neighbours.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .. import ops
from .base import PointModule, WeightKind
from .common import MLP, Device, neighbours, reset_children
from .network import in_network, network_batch_size

__all__ = ["ChannelGate", "PointGate", "CBAM"]



class ChannelGate(PointModule):
    r"""CBAM channel attention, per cloud.

    For cloud :math:`b` with points :math:`\mathcal{P}_b`, a shared MLP
    :math:`C \to C/r \to C` scores the average- and max-pooled features:

    .. math::
        \mathbf{w}_b = \sigma\Big(\mathrm{MLP}\big(\tfrac{1}{|\mathcal{P}_b|}
        \textstyle\sum_{i \in \mathcal{P}_b} \mathbf{x}_i\big)
        + \mathrm{MLP}\big(\max_{i \in \mathcal{P}_b} \mathbf{x}_i\big)\Big),
        \qquad \mathbf{x}'_i = \mathbf{x}_i \odot \mathbf{w}_{b(i)}

    Args:
        channels: Feature size :math:`C` (input and output).
        reduction: Reduction ratio r of the hidden layer, whose width is
            ``max(1, C // r)``. (default: 16)
        act_layer: Activation of the MLP. (default: ``nn.ReLU``)

    Shapes:
        - **input:** x :math:`(N, C)`, pos :math:`(N, 3)` (only checked),
          batch :math:`(N)` sorted (optional); ``nbr_idx`` / ``nbr_mask`` are
          accepted and ignored
        - **output:** :math:`(N, C)`; with ``return_attention=True`` also
          ``{"channel": (B, C)}`` (the gate :math:`\mathbf{w}`, in (0, 1))

    Example:
        >>> gate = ChannelGate(32, reduction=8)
        >>> x, pos = torch.randn(50, 32), torch.randn(50, 3)
        >>> out, attn = gate(x, pos, torch.tensor([0] * 20 + [1] * 30),
        ...                  return_attention=True)
        >>> out.shape, attn["channel"].shape
        (torch.Size([50, 32]), torch.Size([2, 32]))
    """

    is_gate = True  # x <- g(x), no residual
    weight_kinds = {"channel": WeightKind.CHANNEL_GATE}  # [B, C]

    def __init__(self, channels: int, reduction: int = 16, *,
                 act_layer: Callable[[], nn.Module] = nn.ReLU,
                 device: Device = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        ops.check_positive_int(channels, "channels")
        ops.check_positive_int(reduction, "reduction")
        self.channels = channels
        self.reduction = reduction
        hidden = max(1, channels // reduction)
        self.mlp = MLP([channels, hidden, channels], act_layer=act_layer, **dd)
        self.reset_parameters()

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.channels

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor | None = None,
                nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None, *,
                return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        x = self.check_forward(x, pos, batch)
        batch = ops.default_batch(batch, x)  # [N]
        if in_network():  # the plan's number of clouds, reductions without a sync
            b = network_batch_size()
            avg, mx = ops.segment_mean(x, batch, b), ops.segment_max(x, batch, b)  # [B, C]
        else:
            b = ops.batch_size_of(batch)
            avg = ops.segment_mean(x, batch, b)  # [B, C]
            mx = ops.segment_max(x, batch, b)  # [B, C]
        w = torch.sigmoid(self.mlp(torch.stack([avg, mx])).sum(0))  # [B, C]
        out = x * w[batch]  # [N, C]
        return self.finish(out, {"channel": w} if want else None, return_attention)

    def extra_repr(self) -> str:
        return f"{self.channels}, reduction={self.reduction}"


class PointGate(PointModule):
    r"""CBAM spatial attention on points: a learned continuous kernel over kNN.

    Per point, the channel mean and max give :math:`\mathbf{s}_j \in
    \mathbb{R}^2`; a small MLP :math:`K: \mathbb{R}^3 \to \mathbb{R}^2` of the
    relative position plays the 7x7 convolution kernel, averaged over the
    neighbourhood, and a batch norm precedes the sigmoid, as in CBAM's spatial
    gate (conv, BN, sigmoid):

    .. math::
        \mathbf{s}_j = \big[\tfrac{1}{C}\textstyle\sum_c x_{jc},\;
        \max_c x_{jc}\big],\qquad
        a_i = \frac{1}{|\mathcal{N}_k(i)|}\sum_{j \in \mathcal{N}_k(i)}
        K(\mathbf{p}_j - \mathbf{p}_i)^\top \mathbf{s}_j,\qquad
        m_i = \sigma\big(\mathrm{BN}(a_i)\big),\qquad
        \mathbf{x}'_i = m_i\, \mathbf{x}_i

    :math:`\mathcal{N}_k(i)` holds i itself and its valid (masked-in)
    neighbours; only relative positions are used, so the gate is invariant to a
    translation of the cloud. Why the mean and the norm: with a sum over k
    neighbours of the post-ReLU descriptors (mean about 0.8, max about 3 in a
    trained PointNet++), :math:`a_i` sat at 5-16 in every trained model, so
    :math:`m_i \approx 1` everywhere and the gate's gradient vanished (a gate
    stuck open). ``BN`` (:class:`torch.nn.BatchNorm1d` over the N values
    :math:`a_i`, running statistics in eval) keeps the sigmoid's input near its
    sensitive range, where the gate can spread.

    Args:
        channels: Feature size :math:`C` (input and output).
        k: Neighbours per point when ``nbr_idx`` is not given. (default: 16)
        hidden_channels: Width of the kernel MLP :math:`3 \to h \to 2`.
            (default: 16)
        act_layer: Activation of the kernel MLP. (default: ``nn.ReLU``)

    Shapes:
        - **input:** x :math:`(N, C)`, pos :math:`(N, 3)`, batch :math:`(N)`
          sorted (optional), nbr_idx / nbr_mask :math:`(N, K)` (optional)
        - **output:** :math:`(N, C)`; with ``return_attention=True`` also
          ``{"point": (N, 1)}`` (the per-point weight :math:`m`, in (0, 1))

    Example:
        >>> gate = PointGate(16, k=8)
        >>> out, attn = gate(torch.randn(40, 16), torch.randn(40, 3),
        ...                  return_attention=True)
        >>> out.shape, attn["point"].shape
        (torch.Size([40, 16]), torch.Size([40, 1]))
    """

    is_gate = True  # x <- g(x), no residual
    weight_kinds = {"point": WeightKind.POINT_GATE}  # [N, 1]

    def __init__(self, channels: int, k: int = 16, *, hidden_channels: int = 16,
                 act_layer: Callable[[], nn.Module] = nn.ReLU,
                 device: Device = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        ops.check_positive_int(channels, "channels")
        ops.check_positive_int(k, "k")
        ops.check_positive_int(hidden_channels, "hidden_channels")
        self.channels = channels
        self.k = k
        self.kernel = MLP([3, hidden_channels, 2], act_layer=act_layer, **dd)
        self.norm = nn.BatchNorm1d(1, **dd)  # BN(a), as CBAM
        self.reset_parameters()

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.channels

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor | None = None,
                nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None, *,
                return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        x = self.check_forward(x, pos, batch, nbr_idx, nbr_mask)
        nbr_idx, nbr_mask = neighbours(pos, batch, self.k, 1, nbr_idx, nbr_mask)
        s = torch.stack([x.mean(dim=1), x.amax(dim=1)], dim=-1)  # [N, 2]
        rel_pos = (pos[nbr_idx] - pos.unsqueeze(1)).to(x.dtype)  # [N, K, 3]
        kern = self.kernel(rel_pos)  # [N, K, 2]
        contrib = (kern * s[nbr_idx]).sum(-1)  # [N, K]
        count = nbr_mask.sum(1, keepdim=True).clamp(min=1).to(x.dtype)  # [N, 1]
        a = contrib.masked_fill(~nbr_mask, 0.0).sum(1, keepdim=True) / count  # [N, 1]
        m = torch.sigmoid(self.norm(a))  # [N, 1]
        return self.finish(x * m, {"point": m} if want else None, return_attention)

    def extra_repr(self) -> str:
        return f"{self.channels}, k={self.k}"


class CBAM(PointModule):
    r"""CBAM for points: :class:`ChannelGate` then :class:`PointGate`.

    .. math::
        \mathbf{x}' = \mathbf{x} \odot \mathbf{w}_{b(i)},\qquad
        \mathbf{x}''_i = \sigma(a_i(\mathbf{x}'))\, \mathbf{x}'_i

    with :math:`\mathbf{w}` the channel gate of the cloud and :math:`a_i` the
    point gate's kernel response computed on the channel-gated features.

    Args:
        channels: Feature size :math:`C`.
        reduction: Channel gate reduction ratio. (default: 16)
        k: Point gate neighbours when ``nbr_idx`` is not given. (default: 16)
        hidden_channels: Width of the point gate's kernel MLP. (default: 16)

    Shapes:
        - **input:** x :math:`(N, C)`, pos :math:`(N, 3)`, batch :math:`(N)`
          sorted (optional), nbr_idx / nbr_mask :math:`(N, K)` (optional, used
          by the point gate)
        - **output:** :math:`(N, C)`; with ``return_attention=True`` also
          ``{"channel": (B, C), "point": (N, 1)}``. Under
          :func:`~pointsam.nn.record_attention` the submodules ``channel`` and
          ``point`` record their own weights too.

    Example:
        >>> cbam = CBAM(32, reduction=8, k=8)
        >>> out, attn = cbam(torch.randn(60, 32), torch.randn(60, 3),
        ...                  return_attention=True)
        >>> out.shape, sorted(attn)
        (torch.Size([60, 32]), ['channel', 'point'])
    """

    is_gate = True  # x <- g(x), no residual
    weight_kinds = {"channel": WeightKind.CHANNEL_GATE,  # [B, C]
                    "point": WeightKind.POINT_GATE}  # [N, 1]

    def __init__(self, channels: int, reduction: int = 16, k: int = 16, *,
                 hidden_channels: int = 16, device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.channels = channels
        self.channel = ChannelGate(channels, reduction, **dd)
        self.point = PointGate(channels, k, hidden_channels=hidden_channels, **dd)
        self.reset_parameters()

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.channels

    @property
    def k(self) -> int:
        return self.point.k

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor | None = None,
                nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None, *,
                return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        if not want:
            y = self.channel(x, pos, batch)  # [N, C]
            out = self.point(y, pos, batch, nbr_idx, nbr_mask)  # [N, C]
            return self.finish(out, None, return_attention)
        y, a_c = self.channel(x, pos, batch, return_attention=True)  # [N, C]
        out, a_p = self.point(y, pos, batch, nbr_idx, nbr_mask,
                              return_attention=True)  # [N, C]
        attn = {"channel": a_c["channel"], "point": a_p["point"]}
        return self.finish(out, attn, return_attention)

    def extra_repr(self) -> str:
        return f"{self.channels}"
