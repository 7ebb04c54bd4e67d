r"""Cross-modal attention: points attend to another modality's tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from .base import PointModule, WeightKind
from .common import Device, reset_children

__all__ = ["CrossModalAttention"]


class CrossModalAttention(PointModule):
    r"""Multi-head cross-attention from points to the tokens of another
    modality of the same sample (image patch features, text tokens, a second
    sensor), in the manner of `"Attention Is All You Need"
    <https://arxiv.org/abs/1706.03762>`_'s encoder-decoder attention.

    Point i of sample :math:`b(i)` attends only to the tokens
    :math:`\mathcal{T}_{b(i)}` of its own sample (``token_batch``), never to
    another sample's, optionally restricted by a locality mask
    :math:`L_{it}`. Per head :math:`h` of width :math:`D = C / H`:

    .. math::
        \mathbf{q}_i = \mathbf{W}_q \mathbf{x}_i,\quad
        \mathbf{k}_t = \mathbf{W}_k \mathbf{z}_t,\quad
        \mathbf{v}_t = \mathbf{W}_v \mathbf{z}_t

    .. math::
        a^h_{it} = \mathrm{softmax}_{t \in \mathcal{T}_{b(i)},\, L_{it}}\Big(
        \frac{\mathbf{q}^h_i \cdot \mathbf{k}^h_t}{\sqrt{D}}\Big),\qquad
        \mathbf{x}'_i = \mathbf{W}_o \big\Vert_h \sum_t a^h_{it}\, \mathbf{v}^h_t

    Locality (both optional, combined with "and"):

    - ``token_pos`` :math:`(T, 3)` with the constructor's ``radius`` r: a point
      sees the tokens within distance r (for instance image patches
      back-projected to 3D, or another sensor's points);
    - ``mask`` :math:`(N, T)` bool over the *global* token index, True where
      point i may attend token t, e.g. from a camera projection: with
      ``uv`` :math:`(N, 2)` the pixel of each point and ``patch`` :math:`(T)`
      the patch of each token, ``mask = patch_of(uv)[:, None] == patch[None]``.
      Entries for tokens of other samples are ignored.

    A point that sees no token gets :math:`\mathbf{x}'_i = \mathbf{W}_o
    \mathbf{0}` (the output bias) and all-zero weights, never NaN.

    Args:
        channels: Point feature size :math:`C` (input and output), divisible by
            ``num_heads``.
        other_channels: Token feature size :math:`C_{o}`.
        num_heads: Heads H. (default: 8)
        radius: Locality radius r in the units of ``pos`` (metres); used only
            when ``token_pos`` is given. ``None``: no radius limit.
            (default: ``None``)
        bias: Learn biases in the q/k/v projections. (default: ``True``)
        fused: Use ``scaled_dot_product_attention`` on the padded
            ``[B, H, N_max, T_max]`` layout when the weights are not requested;
            the plain path (``False``, and always when the weights are
            requested) writes the softmax out. (default: ``True``)

    Shapes:
        - **input:** x :math:`(N, C)`, pos :math:`(N, 3)`, batch :math:`(N)`
          sorted (optional); keyword-only ``tokens`` :math:`(T, C_o)`,
          ``token_batch`` :math:`(T)` sorted (required when ``batch`` is
          given), ``token_pos`` :math:`(T, 3)` and ``mask`` :math:`(N, T)`
          (optional). ``nbr_idx`` / ``nbr_mask`` are accepted and ignored.
        - **output:** :math:`(N, C)`; with ``return_attention=True`` also
          ``{"attn": (N, T_{max}, H)}``, column l the l-th token of the point's
          own sample (0 beyond its token count or where masked out)

    Example:
        >>> cm = CrossModalAttention(16, 32, num_heads=4)
        >>> x, pos, batch = torch.randn(20, 16), torch.randn(20, 3), torch.tensor(
        ...     [0] * 8 + [1] * 12)
        >>> tokens, token_batch = torch.randn(10, 32), torch.tensor([0] * 4 + [1] * 6)
        >>> out, attn = cm(x, pos, batch, tokens=tokens, token_batch=token_batch,
        ...                return_attention=True)
        >>> out.shape, attn["attn"].shape
        (torch.Size([20, 16]), torch.Size([20, 6, 4]))
    """

    extra_inputs = frozenset({"tokens", "token_batch", "token_pos", "mask"})
    weight_kinds = {"attn": WeightKind.CROSS_MODAL}  # [N, T_max, H]

    def __init__(self, channels: int, other_channels: int, *, num_heads: int = 8,
                 radius: float | None = None, bias: bool = True, fused: bool = True,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        ops.check_positive_int(channels, "channels")
        ops.check_positive_int(other_channels, "other_channels")
        ops.check_positive_int(num_heads, "num_heads")
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads "
                             f"({num_heads})")
        if radius is not None and not (float(radius) > 0 and radius < float("inf")):
            raise ValueError(f"radius must be a positive finite number, got {radius!r}")
        dd = {"device": device, "dtype": dtype}
        self.channels = channels
        self.other_channels = other_channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.radius = radius
        self.fused = fused
        self.q = nn.Linear(channels, channels, bias=bias, **dd)
        self.kv = nn.Linear(other_channels, 2 * channels, bias=bias, **dd)
        self.proj = nn.Linear(channels, channels, **dd)
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
                tokens: Tensor, token_batch: Tensor | None = None,
                token_pos: Tensor | None = None, mask: Tensor | None = None,
                return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        x = self.check_forward(x, pos, batch)
        n = x.size(0)
        if not isinstance(tokens, Tensor) or tokens.dim() != 2:
            got = list(tokens.shape) if isinstance(tokens, Tensor) else type(tokens)
            raise ValueError(f"tokens must have shape [T, C_other], got {got}")
        nt = tokens.size(0)
        if nt == 0:
            raise ValueError("tokens is empty (0 tokens)")
        ops.check_features(tokens, nt, "tokens", channels=self.other_channels)
        if tokens.device != x.device or tokens.dtype != x.dtype:
            raise ValueError(f"tokens is {tokens.dtype} on {tokens.device} but x is "
                             f"{x.dtype} on {x.device}")
        if (batch is None) != (token_batch is None):
            raise ValueError("give both batch and token_batch, or neither")
        ops.check_batch(token_batch, nt, "token_batch")
        if batch is None:
            batch = ops.default_batch(None, x)  # [N]
            token_batch = ops.default_batch(None, tokens)  # [T]
        assert token_batch is not None
        b = max(ops.batch_size_of(batch), ops.batch_size_of(token_batch))
        h, d = self.num_heads, self.head_dim

        kv, tmask = ops.to_dense(self.kv(tokens), token_batch,
                                 batch_size=b)  # [B, L, 2C], [B, L]
        lmax = kv.size(1)
        kv = kv.view(b, lmax, 2, h, d)  # [B, L, 2, H, D]
        q_dense, pmask = ops.to_dense(self.q(x), batch, batch_size=b)  # [B, M, C]
        q_dense = q_dense.view(b, -1, h, d)  # [B, M, H, D]
        valid = tmask[batch]  # [N, L]
        local = token_pos is not None and self.radius is not None or mask is not None
        if token_pos is not None or mask is not None:
            tptr = ops.batch_to_ptr(token_batch, b)  # [B + 1]
            col = tptr[batch].unsqueeze(1) + torch.arange(
                lmax, device=x.device)  # [N, L] global token index
            col = col.clamp(max=nt - 1)
            if mask is not None:
                if not isinstance(mask, Tensor) or mask.shape != (n, nt):
                    got = list(mask.shape) if isinstance(mask, Tensor) else type(mask)
                    raise ValueError(f"mask must have shape [N, T] = [{n}, {nt}], "
                                     f"got {got}")
                if mask.dtype != torch.bool:
                    raise ValueError(f"mask must be bool, got {mask.dtype}")
                valid = valid & mask.gather(1, col)  # [N, L]
            if token_pos is not None:
                ops.check_pos(token_pos, "token_pos")
                if token_pos.size(0) != nt:
                    raise ValueError(f"token_pos has {token_pos.size(0)} rows but "
                                     f"tokens has {nt}")
                if self.radius is not None:
                    dist2 = (token_pos[col] - pos.unsqueeze(1)).float().pow(2).sum(
                        -1)  # [N, L]
                    valid = valid & (dist2 <= self.radius ** 2)
        seen = valid.any(dim=1, keepdim=True)  # [N, 1] sees at least one token
        if self.fused and not want:
            # a blind row attends everywhere (finite), then its output is zeroed
            if local:
                vd, _ = ops.to_dense(valid, batch, batch_size=b,
                                     max_num_points=q_dense.size(1))  # [B, M, L]
                am = (vd | ~vd.any(-1, keepdim=True)).unsqueeze(1)  # [B, 1, M, L]
            else:
                am = (tmask | ~tmask.any(-1, keepdim=True))[:, None, None]  # [B,1,1,L]
            kd, vv = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 x [B, H, L, D]
            od = F.scaled_dot_product_attention(
                q_dense.transpose(1, 2), kd, vv, attn_mask=am)  # [B, H, M, D]
            out = ops.from_dense(od.transpose(1, 2), pmask)  # [N, H, D]
            out = out.reshape(n, self.channels) * seen  # [N, C]
            return self.finish(self.proj(out), None, return_attention)
        logits = torch.einsum("bmhd,blhd->bmlh", q_dense,
                              kv[:, :, 0]).float()  # [B, M, L, H]
        logits = ops.from_dense(logits, pmask) * d ** -0.5  # [N, L, H]
        fill = ~(valid | ~seen)  # [N, L] a blind row keeps finite logits
        logits = logits.masked_fill(fill.unsqueeze(-1), float("-inf"))
        a = logits.softmax(dim=1) * seen.unsqueeze(-1)  # [N, L, H]
        a = a.to(x.dtype)
        a_dense, _ = ops.to_dense(a, batch, batch_size=b)  # [B, M, L, H]
        out = torch.einsum("bmlh,blhd->bmhd", a_dense, kv[:, :, 1])  # [B, M, H, D]
        out = ops.from_dense(out, pmask).reshape(n, self.channels)  # [N, C]
        out = self.proj(out)  # [N, C]
        return self.finish(out, {"attn": a} if want else None, return_attention)

    def extra_repr(self) -> str:
        return (f"{self.channels}, {self.other_channels}, num_heads={self.num_heads}, "
                f"radius={self.radius}, fused={self.fused}")
