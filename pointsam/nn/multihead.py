r"""Full multi-head self-attention within each cloud."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from .base import PointModule, WeightKind
from .common import MLP, Device, reset_children

__all__ = ["MultiHeadPointAttention"]


class MultiHeadPointAttention(PointModule):
    r"""Full multi-head self-attention among the points of each cloud, from
    `"Attention Is All You Need" <https://arxiv.org/abs/1706.03762>`_.

    Every point attends to every point of its own cloud :math:`\mathcal{P}_b`
    (never to another cloud). With an optional encoding of the position
    relative to the cloud centroid :math:`\bar{\mathbf{p}}_b` added to the
    queries and keys, per head :math:`h` of width :math:`D = C / H`:

    .. math::
        \mathbf{e}_i = \phi(\mathbf{p}_i - \bar{\mathbf{p}}_b),\quad
        \mathbf{q}_i = \mathbf{W}_q(\mathbf{x}_i + \mathbf{e}_i),\quad
        \mathbf{k}_j = \mathbf{W}_k(\mathbf{x}_j + \mathbf{e}_j),\quad
        \mathbf{v}_j = \mathbf{W}_v \mathbf{x}_j

    .. math::
        a^h_{ij} = \mathrm{softmax}_{j \in \mathcal{P}_b}\Big(
        \frac{\mathbf{q}^h_i \cdot \mathbf{k}^h_j}{\sqrt{D}}\Big),\qquad
        \mathbf{x}'_i = \mathbf{W}_o \big\Vert_h \textstyle\sum_j a^h_{ij}
        \mathbf{v}^h_j

    The fast path pads the batch with :func:`pointsam.ops.to_dense` and calls
    ``F.scaled_dot_product_attention`` with a key-padding mask; the plain path
    (``fused=False``, and always when the weights are requested) writes the
    softmax out. Cost :math:`O(\sum_b N_b^2)` per head, so a cloud with more
    than ``max_points`` points raises a ``ValueError`` before anything is
    allocated. The encoding uses only positions relative to the centroid, so
    the module is invariant to a translation of a cloud.

    Args:
        channels: Feature size :math:`C` (input and output), divisible by
            ``num_heads``.
        num_heads: Heads H. (default: 8)
        max_points: Largest cloud accepted. (default: 8192)
        pos_encoding: Add :math:`\phi`, an MLP :math:`3 \to C \to C` of the
            centred positions, to queries and keys. (default: ``True``)
        bias: Learn biases in the q/k/v projection. (default: ``True``)
        fused: Use ``scaled_dot_product_attention`` when the weights are not
            requested. (default: ``True``)

    Shapes:
        - **input:** x :math:`(N, C)`, pos :math:`(N, 3)`, batch :math:`(N)`
          sorted (optional); ``nbr_idx`` / ``nbr_mask`` are accepted and ignored
        - **output:** :math:`(N, C)`; with ``return_attention=True`` also
          ``{"attn": (B, H, N_{max}, N_{max})}``, row i of cloud b holding the
          weights over the cloud's points in their stored order; padded rows
          and columns (index :math:`\ge N_b`) are 0

    Example:
        >>> mha = MultiHeadPointAttention(32, num_heads=4)
        >>> batch = torch.tensor([0] * 10 + [1] * 14)
        >>> out, attn = mha(torch.randn(24, 32), torch.randn(24, 3), batch,
        ...                 return_attention=True)
        >>> out.shape, attn["attn"].shape
        (torch.Size([24, 32]), torch.Size([2, 4, 14, 14]))
    """

    export_blocker = ("cannot be exported: it pads the clouds to a size read from the "
                      "data inside forward (int(counts.max())); use "
                      "attention='local_global' (local + pooled global attention) for "
                      "an exportable model")
    weight_kinds = {"attn": WeightKind.FULL}  # [B, H, N_max, N_max]

    def __init__(self, channels: int, *, num_heads: int = 8, max_points: int = 8192,
                 pos_encoding: bool = True, bias: bool = True, fused: bool = True,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        ops.check_positive_int(channels, "channels")
        ops.check_positive_int(num_heads, "num_heads")
        ops.check_positive_int(max_points, "max_points")
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads "
                             f"({num_heads})")
        dd = {"device": device, "dtype": dtype}
        self.channels = channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.max_points = max_points
        self.fused = fused
        self.qkv = nn.Linear(channels, 3 * channels, bias=bias, **dd)
        self.proj = nn.Linear(channels, channels, **dd)
        self.pos_nn = MLP([3, channels, channels], **dd) if pos_encoding else None
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
        n = x.size(0)
        batch = ops.default_batch(batch, x)  # [N]
        b = ops.batch_size_of(batch)
        counts = torch.bincount(batch, minlength=b)  # [B]
        n_max = int(counts.max())
        if n_max > self.max_points:
            cloud = int(counts.argmax())
            raise ValueError(
                f"cloud {cloud} has {n_max} points, more than max_points="
                f"{self.max_points} of MultiHeadPointAttention (full attention "
                f"costs O(N^2) memory); subsample the cloud or raise max_points")
        h, d = self.num_heads, self.head_dim
        qkv = self.qkv(x).view(n, 3, h, d)  # [N, 3, H, D]
        q, k, v = qkv.unbind(1)  # 3 x [N, H, D]
        if self.pos_nn is not None:
            centre = ops.segment_mean(pos, batch, b)  # [B, 3]
            e = self.pos_nn((pos - centre[batch]).to(x.dtype))  # [N, C]
            pe = F.linear(e, self.qkv.weight[: 2 * self.channels])  # [N, 2C]
            pe = pe.view(n, 2, h, d)  # [N, 2, H, D]
            q, k = q + pe[:, 0], k + pe[:, 1]  # [N, H, D]
        packed = torch.stack([q, k, v], 1).flatten(1)  # [N, 3 H D]
        dense, mask = ops.to_dense(packed, batch, batch_size=b,
                                   max_num_points=n_max)  # [B, M, 3HD], [B, M]
        dense = dense.view(b, n_max, 3, h, d).permute(2, 0, 3, 1, 4)  # [3, B, H, M, D]
        qd, kd, vd = dense.unbind(0)  # 3 x [B, H, M, D]
        # an empty cloud (a gap in batch) has no valid key: let its pads attend
        key_mask = mask | ~mask.any(1, keepdim=True)  # [B, M]
        attn_mask = key_mask[:, None, None, :]  # [B, 1, 1, M]
        weights = None
        if self.fused and not want:
            od = F.scaled_dot_product_attention(qd, kd, vd,
                                                attn_mask=attn_mask)  # [B, H, M, D]
        else:
            logits = (qd @ kd.transpose(-1, -2)).float() * d ** -0.5  # [B, H, M, M]
            logits = logits.masked_fill(~attn_mask, float("-inf"))
            weights = logits.softmax(-1).to(vd.dtype)  # [B, H, M, M]
            od = weights @ vd  # [B, H, M, D]
        od = od.transpose(1, 2).reshape(b, n_max, self.channels)  # [B, M, C]
        out = self.proj(ops.from_dense(od, mask))  # [N, C]
        attn = None
        if want:
            assert weights is not None
            pad = mask[:, None, :, None] & mask[:, None, None, :]  # [B, 1, M, M]
            attn = {"attn": weights * pad}  # [B, H, M, M]
        return self.finish(out, attn, return_attention)

    def extra_repr(self) -> str:
        return (f"{self.channels}, num_heads={self.num_heads}, "
                f"max_points={self.max_points}, fused={self.fused}")
