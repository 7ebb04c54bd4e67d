r"""Global attention through pooled tokens, and its local + global combination."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .. import ops
from .base import PointModule, WeightKind
from .common import MLP, Device, reset_children
from .laff import LAFF
from .local_attention import LocalAttention
from .network import (
    dense_layout,
    from_dense_slots,
    network_tables,
    to_dense_slots,
    tracing,
)

__all__ = ["GlobalPooledAttention", "LocalGlobalAttention", "pool_tokens"]


def pool_tokens(x: Tensor, pos: Tensor, batch: Tensor, num_global: int,
                batch_size: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Pool each cloud to :math:`M_b = \min(\text{num\_global}, n_b)` tokens.

    Centres are farthest-point samples (canonical start, so the centres do not
    depend on the storage order); every point is averaged into its nearest centre.

    Returns:
        ``(tokens [S, C], centres [S, 3], token_batch [S], assign [N])`` with
        :math:`S = \sum_b M_b` and ``assign`` the token of each point.
    """
    cidx = ops.fps(pos, batch, num=num_global, batch_size=batch_size)  # [S]
    cpos, cbatch = pos[cidx], batch[cidx]  # [S, 3], [S]
    assign, _ = ops.knn(cpos, 1, cbatch, query=pos, query_batch=batch,
                        batch_size=batch_size)  # [N, 1]
    assign = assign[:, 0]  # [N]
    tokens = ops.segment_mean(x, assign, cidx.numel())  # [S, C]
    return tokens, cpos, cbatch, assign


class GlobalPooledAttention(PointModule):
    r"""Every point attends to pooled tokens of its own cloud: the point version of
    the pooled branch of spatially separable self-attention (`"Twins"
    <https://arxiv.org/abs/2104.13840>`_).

    Each cloud b is pooled to :math:`M_b = \min(M, n_b)` tokens
    :math:`\mathbf{t}_m` at FPS centres :math:`\mathbf{c}_m` (each point averaged
    into its nearest centre, :func:`pool_tokens`). Then per head h
    (:math:`D = C_{out}/H`):

    .. math::
        a_{imh} = \mathrm{softmax}_{m \le M_{b(i)}}\Big(\tfrac{1}{\sqrt{D}}
        \mathbf{q}_{ih}^\top \mathbf{k}_{mh} + \beta_h(\mathbf{p}_i -
        \mathbf{c}_m)\Big),\qquad
        \mathbf{x}'_i = \mathbf{W}_o\Big[\sum_m a_{imh}\,
        \mathbf{v}_{mh}\Big]_{h=1}^H

    with :math:`\mathbf{q} = \mathbf{W}_q \mathbf{x}`, :math:`\mathbf{k} =
    \mathbf{W}_k \mathbf{t}`, :math:`\mathbf{v} = \mathbf{W}_v \mathbf{t}` and
    :math:`\beta` = ``pos_nn`` (MLP :math:`3 \to H`), the relative-position encoding
    to the centres. Cost :math:`O(N M)`: queries and tokens are padded per cloud
    (``ops.to_dense``) to ``[B, N_max]`` and ``[B, M]`` with a mask; no
    :math:`N \times N` tensor. With ``fused=True`` the points go through in blocks
    whose ``[B, n, M, *]`` intermediates are recomputed in backward (activation
    checkpointing); ``fused=False`` is the plain reference.

    ``nbr_idx``/``nbr_mask`` are accepted for a uniform signature and ignored.

    Args:
        in_channels: Input size :math:`C_{in}`.
        out_channels: Output size (default: ``in_channels``), divisible by
            ``num_heads``.
        num_heads: Heads H. (default: 8)
        num_global: Tokens per cloud M. (default: 256)
        hidden_channels: Width of ``pos_nn``. (default: 16)
        pos_nn: Module :math:`(*, 3) \to (*, H)`; default ``MLP([3, hidden, H])``.
        fused: Blocked, checkpointed computation. (default: ``True``)
        chunk_size: Points per block (per cloud) on the fused path. (default: 2048)

    Shapes:
        - **input:** x :math:`(N, C_{in})`, pos :math:`(N, 3)`, batch :math:`(N)`
        - **output:** :math:`(N, C_{out})`; with ``return_attention=True`` also
          ``{"attn": (N, M_{max}, H), "centres": (S, 3), "assign": (N)}``: the
          token weights (columns past a cloud's :math:`M_b` are 0), the centres of
          the tokens (cloud after cloud) and the token of each point.

    Example:
        >>> m = GlobalPooledAttention(16, 32, num_heads=4, num_global=8)
        >>> x, pos = torch.randn(50, 16), torch.randn(50, 3)
        >>> batch = torch.tensor([0] * 20 + [1] * 30)
        >>> out, w = m(x, pos, batch, return_attention=True)
        >>> out.shape, w["attn"].shape
        (torch.Size([50, 32]), torch.Size([50, 8, 4]))
    """

    weight_kinds = {"attn": WeightKind.TOKEN,  # [N, M_max, H]
                    "centres": WeightKind.TABLE,  # [S, 3]
                    "assign": WeightKind.TABLE}  # [N]

    def __init__(self, in_channels: int, out_channels: int | None = None, *,
                 num_heads: int = 8, num_global: int = 256, hidden_channels: int = 16,
                 pos_nn: nn.Module | None = None, fused: bool = True,
                 chunk_size: int = 2048, device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        for v, name in ((in_channels, "in_channels"), (out_channels, "out_channels"),
                        (num_heads, "num_heads"), (num_global, "num_global"),
                        (hidden_channels, "hidden_channels"),
                        (chunk_size, "chunk_size")):
            ops.check_positive_int(v, name)
        if out_channels % num_heads:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by "
                             f"num_heads ({num_heads})")
        dd = {"device": device, "dtype": dtype}
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_heads, self.head_dim = num_heads, out_channels // num_heads
        self.num_global, self.fused, self.chunk_size = num_global, fused, chunk_size
        self.lin_q = nn.Linear(in_channels, out_channels, bias=False, **dd)
        self.lin_k = nn.Linear(in_channels, out_channels, bias=False, **dd)
        self.lin_v = nn.Linear(in_channels, out_channels, bias=False, **dd)
        self.pos_nn = pos_nn if pos_nn is not None else MLP(
            [3, hidden_channels, num_heads], **dd)
        self.proj = nn.Linear(out_channels, out_channels, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    geometry_keys = ("centre_idx", "assign", "assign_local", "count", "q_slot",
                     "q_mask", "t_slot", "t_mask")

    def plan_geometry(self, pos: Tensor, batch: Tensor,
                      batch_size: int) -> dict[str, Tensor]:
        """The tokens' FPS centres, each point's token and the dense layouts."""
        cidx = ops.fps(pos, batch, num=self.num_global, batch_size=batch_size)  # [S]
        cbatch = batch[cidx]  # [S]
        assign, _ = ops.knn(pos[cidx], 1, cbatch, query=pos, query_batch=batch,
                            batch_size=batch_size)  # [N, 1]
        assign = assign[:, 0]  # [N]
        count = ops.count_per_index(assign, cidx.numel()).clamp(min=1)  # [S]
        q_slot, q_mask = dense_layout(batch, batch_size)  # [N], [B, N_max]
        t_slot, t_mask = dense_layout(cbatch, batch_size)  # [S], [B, M_max]
        m = t_mask.size(1)
        assign_local = t_slot[assign] - batch * m  # [N] token index within the cloud
        return {"centre_idx": cidx, "assign": assign, "assign_local": assign_local,
                "count": count.to(pos.dtype),
                "q_slot": q_slot, "q_mask": q_mask, "t_slot": t_slot,
                "t_mask": t_mask}

    def _network_inputs(self, x: Tensor, pos: Tensor, batch: Tensor,
                        geo: dict[str, Tensor]
                        ) -> tuple[Tensor, ...]:
        """Dense queries and tokens from the plan's tables (no search, no sync)."""
        cidx, q_slot, q_mask = geo["centre_idx"], geo["q_slot"], geo["q_mask"]
        t_slot, t_mask = geo["t_slot"], geo["t_mask"]
        s = cidx.size(0)
        count = geo["count"].to(x.dtype).unsqueeze(1)  # [S, 1]
        if tracing():  # per cloud, a one-hot matmul (no scatter-add, see ops.segment_sum)
            a_loc = to_dense_slots(geo["assign_local"], q_slot, q_mask,
                                   fill_value=-1)  # [B, N_max]
            ar = torch.arange(t_mask.size(1), device=x.device).view(1, -1, 1)
            onehot = (a_loc.unsqueeze(1) == ar).to(x.dtype)  # [B, M, N_max]
            xd = to_dense_slots(x, q_slot, q_mask)  # [B, N_max, C]
            tokens = from_dense_slots(onehot @ xd, t_slot) / count  # [S, C]
        else:
            tokens = ops.segment_sum(x, geo["assign"], s) / count  # [S, C]
        cpos = pos[cidx]  # [S, 3]
        kd = to_dense_slots(self.lin_k(tokens), t_slot, t_mask)  # [B, M, C]
        vd = to_dense_slots(self.lin_v(tokens), t_slot, t_mask)  # [B, M, C]
        cd = to_dense_slots(cpos, t_slot, t_mask)  # [B, M, 3]
        qd = to_dense_slots(self.lin_q(x), q_slot, q_mask)  # [B, N_max, C]
        pd = to_dense_slots(pos, q_slot, q_mask)  # [B, N_max, 3]
        return qd, pd, kd, vd, cd, t_mask, cpos, geo["assign"]

    def _block(self, q: Tensor, p: Tensor, k: Tensor, v: Tensor, c: Tensor,
               tmask: Tensor) -> tuple[Tensor, Tensor]:
        """Queries q [B, n, C] at p [B, n, 3] over tokens k, v [B, M, C] at c."""
        h, d = self.num_heads, self.head_dim
        if isinstance(self.pos_nn, MLP):  # first layer from per-point products
            lin0 = self.pos_nn.lins[0]
            hp = lin0(p)  # [B, n, F] (with the bias)
            hc = torch.nn.functional.linear(c, lin0.weight)  # [B, M, F]
            bias = self.pos_nn.forward_from_first(
                hp.unsqueeze(2) - hc.unsqueeze(1))  # [B, n, M, H]
        else:
            bias = self.pos_nn(p.unsqueeze(2) - c.unsqueeze(1))  # [B, n, M, H]
        qh = q.unflatten(-1, (h, d)).transpose(1, 2)  # [B, H, n, D]
        kh = k.unflatten(-1, (h, d)).transpose(1, 2)  # [B, H, M, D]
        logits = (qh @ kh.transpose(-1, -2)) * (d ** -0.5)  # [B, H, n, M]
        logits = logits + bias.permute(0, 3, 1, 2)  # [B, H, n, M]
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        logits = logits.masked_fill(~tmask[:, None, None, :], float("-inf"))
        a = logits.softmax(dim=-1).to(q.dtype)  # [B, H, n, M]
        vh = v.unflatten(-1, (h, d)).transpose(1, 2)  # [B, H, M, D]
        out = (a @ vh).transpose(1, 2).flatten(-2)  # [B, n, C]
        return out, a

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor | None = None,
                nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None, *,
                return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        x = self.check_forward(x, pos, batch, nbr_idx, nbr_mask)
        batch = ops.default_batch(batch, pos)  # [N]
        pos = pos.to(x.dtype)
        geo = network_tables(self)
        pmask = None
        if geo is not None:  # inside a network: the plan's tables
            qd, pd, kd, vd, cd, tmask, cpos, assign = self._network_inputs(
                x, pos, batch, geo)
            q_slot = geo["q_slot"]
        else:
            b = ops.batch_size_of(batch)
            tokens, cpos, cbatch, assign = pool_tokens(x, pos, batch, self.num_global,
                                                       b)
            q = self.lin_q(x)  # [N, C]
            kd, tmask = ops.to_dense(self.lin_k(tokens), cbatch,
                                     batch_size=b)  # [B, M, C]
            vd, _ = ops.to_dense(self.lin_v(tokens), cbatch, batch_size=b)  # [B, M, C]
            cd, _ = ops.to_dense(cpos, cbatch, batch_size=b)  # [B, M, 3]
            qd, pmask = ops.to_dense(q, batch, batch_size=b)  # [B, N_max, C]
            pd, _ = ops.to_dense(pos, batch, batch_size=b)  # [B, N_max, 3]
        n_max = qd.size(1)
        if not self.fused or tracing() or n_max <= self.chunk_size:
            out, a = self._block(qd, pd, kd, vd, cd, tmask)  # [B, N_max, C]
        else:  # blocks of points: the [B, n, M, F] position terms stay small,
            # also while the weights are recorded (only they are kept whole)
            grad = torch.is_grad_enabled()
            outs, ws = [], []
            for s in range(0, n_max, self.chunk_size):
                e = min(n_max, s + self.chunk_size)
                if grad:
                    o, w = checkpoint(self._block, qd[:, s:e], pd[:, s:e], kd, vd, cd,
                                      tmask, use_reentrant=False)
                else:
                    o, w = self._block(qd[:, s:e], pd[:, s:e], kd, vd, cd, tmask)
                outs.append(o)  # [B, n, C]
                if want:
                    ws.append(w)  # [B, H, n, M]
            out = torch.cat(outs, dim=1)  # [B, N_max, C]
            a = torch.cat(ws, dim=2) if want else None  # [B, H, N_max, M]
        if pmask is None:
            out = self.proj(from_dense_slots(out, q_slot))  # [N, C_out]
        else:
            out = self.proj(ops.from_dense(out, pmask))  # [N, C_out]
        attn = None
        if want:
            w = a.permute(0, 2, 3, 1)  # [B, N_max, M_max, H]
            w = w[pmask] if pmask is not None else from_dense_slots(w, q_slot)
            # [N, M_max, H]
            attn = {"attn": w, "centres": cpos, "assign": assign}
        return self.finish(out, attn, return_attention)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, num_heads={self.num_heads}, "
                f"num_global={self.num_global}")


class LocalGlobalAttention(PointModule):
    r"""Local and global attention fused per point: the point version of spatially
    separable self-attention (`"Twins" <https://arxiv.org/abs/2104.13840>`_).

    .. math::
        \mathbf{x}'_i = \mathrm{fuse}\big(\mathrm{Local}(\mathbf{x})_i,\;
        \mathrm{Global}(\mathbf{x})_i\big)

    with :class:`~pointsam.nn.LocalAttention` (k nearest, scalar heads) and
    :class:`GlobalPooledAttention` (M tokens per cloud), fused by :class:`LAFF`
    (``fusion="laff"``, per-point convex weights) or a linear layer over the
    concatenation (``fusion="linear"``). Cost :math:`O(N(k + M))`.

    Args:
        in_channels: Input size :math:`C_{in}`.
        out_channels: Output size (default: ``in_channels``).
        num_heads: Heads of both branches and of LAFF. (default: 8)
        k: Neighbours of the local branch. (default: 16)
        dilation: Dilation of the local kNN. (default: 1)
        num_global: Tokens per cloud of the global branch. (default: 256)
        fusion: ``"laff"`` or ``"linear"``. (default: ``"laff"``)
        local_mode: ``mode`` of the local branch. (default: ``"scalar"``)

    Shapes:
        - **input:** x :math:`(N, C_{in})`, pos :math:`(N, 3)`, batch :math:`(N)`,
          nbr_idx / nbr_mask :math:`(N, K)` (optional, for the local branch)
        - **output:** :math:`(N, C_{out})`; with ``return_attention=True`` also
          ``{"local": (N, K, H), "global": (N, M_{max}, H), "fusion": (N, H, 2)}``
          (``"fusion"`` only with LAFF; index 0 local, 1 global)

    Example:
        >>> m = LocalGlobalAttention(16, 32, num_heads=4, k=8, num_global=16)
        >>> x, pos = torch.randn(60, 16), torch.randn(60, 3)
        >>> out, w = m(x, pos, return_attention=True)
        >>> out.shape, w["fusion"].shape
        (torch.Size([60, 32]), torch.Size([60, 4, 2]))
    """

    weight_kinds = {"local": WeightKind.NEIGHBOUR,  # [N, K, H]
                    "global": WeightKind.TOKEN,  # [N, M_max, H]
                    "fusion": WeightKind.FUSION}  # [N, H, 2]
    branch_names = ("local", "global")

    def __init__(self, in_channels: int, out_channels: int | None = None, *,
                 num_heads: int = 8, k: int = 16, dilation: int = 1,
                 num_global: int = 256, fusion: str = "laff",
                 local_mode: str = "scalar", device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        if fusion not in ("laff", "linear"):
            raise ValueError(f"fusion must be 'laff' or 'linear', got {fusion!r}")
        dd = {"device": device, "dtype": dtype}
        self.in_channels, self.out_channels, self.fusion = in_channels, out_channels, \
            fusion
        self.local = LocalAttention(in_channels, out_channels, num_heads=num_heads, k=k,
                                    dilation=dilation, mode=local_mode, **dd)
        self.glob = GlobalPooledAttention(in_channels, out_channels,
                                          num_heads=num_heads, num_global=num_global,
                                          **dd)
        self.fuse: nn.Module
        if fusion == "laff":
            self.fuse = LAFF([out_channels, out_channels], out_channels,
                             num_heads=num_heads, **dd)
        else:
            self.fuse = nn.Linear(2 * out_channels, out_channels, **dd)
            self.weight_kinds = {k: v for k, v in type(self).weight_kinds.items()
                                 if k != "fusion"}  # no fusion weights
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor | None = None,
                nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None, *,
                return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        x = self.check_forward(x, pos, batch, nbr_idx, nbr_mask)
        with ops.trusted():  # checked once above: children, knn and fusion do not check again
            attn: dict[str, Tensor] | None = {} if want else None
            if want:
                lo, la = self.local(x, pos, batch, nbr_idx, nbr_mask, return_attention=True)
                go, ga = self.glob(x, pos, batch, return_attention=True)
                attn = {"local": la["attn"], "global": ga["attn"]}
            else:
                lo = self.local(x, pos, batch, nbr_idx, nbr_mask)  # [N, C_out]
                go = self.glob(x, pos, batch)  # [N, C_out]
            if self.fusion == "laff":
                if want:
                    out, fa = self.fuse([lo, go], return_attention=True)
                    attn["fusion"] = fa["a"]  # type: ignore[index]
                else:
                    out = self.fuse([lo, go])  # [N, C_out]
            else:
                out = self.fuse(torch.cat([lo, go], dim=-1))  # [N, C_out]
            return self.finish(out, attn, return_attention)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, fusion={self.fusion!r}"
