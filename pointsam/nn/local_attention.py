r"""Attention of each point over its k (dilated) nearest neighbours."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import ops
from ._chunked import chunked_neighbour_apply, default_chunk
from ._vector_fused import fused_vector_attention
from .base import PointModule, WeightKind
from .common import MLP, Device, Layer, linear_chain, neighbours, reset_children
from .network import tracing

__all__ = ["LocalAttention"]

_MODES = ("scalar", "vector")


def _masked_softmax(logits: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over dim 1 (the neighbours), at least float32; masked -> 0."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if mask is not None:
        shape = mask.shape + (1,) * (logits.dim() - mask.dim())
        logits = logits.masked_fill(~mask.view(shape), float("-inf"))
    return logits.softmax(dim=1)


def add_self_loops(nbr_idx: Tensor, nbr_mask: Tensor) -> tuple[Tensor, Tensor]:
    r"""Make every point a neighbour of itself exactly once (PyG's self loops).

    PyG's ``PointTransformerConv`` removes the self loops of its graph and adds
    one per point. On a table: entries ``j == i`` are masked and a first column
    ``i`` is prepended, unless every row already starts with itself (the case of
    :func:`pointsam.ops.knn` with distinct points) and holds no other valid self
    entry, in which case the table is returned unchanged. While
    ``torch.export``/``torch.compile`` trace, the column is always prepended (the
    same neighbour set, no value-dependent branch).

    Returns:
        ``(nbr_idx, nbr_mask)`` of shape :math:`(N, K)` or :math:`(N, K + 1)`.
    """
    n = nbr_idx.size(0)
    ar = torch.arange(n, device=nbr_idx.device).unsqueeze(1)  # [N, 1]
    is_self = nbr_idx == ar  # [N, K]
    if not tracing() and bool((is_self[:, 0] & nbr_mask[:, 0]).all()) and not bool(
            (is_self[:, 1:] & nbr_mask[:, 1:]).any()):
        return nbr_idx, nbr_mask
    mask = nbr_mask & ~is_self
    idx = torch.cat([ar, nbr_idx], dim=1)  # [N, K + 1]
    mask = torch.cat([torch.ones_like(ar, dtype=torch.bool), mask], dim=1)
    return idx, mask


class LocalAttention(PointModule):
    r"""Multi-head attention over the k (dilated) nearest neighbours, from
    `"Point Transformer" <https://arxiv.org/abs/2012.09164>`_.

    With :math:`\delta_{ij} = \theta(\mathbf{p}_i - \mathbf{p}_j)` the
    relative-position encoding (``pos_nn``, an MLP :math:`3 \to C_{out}`), added to
    keys and values, and :math:`\mathcal{N}(i)` the k nearest neighbours of i
    (self included; with dilation d every d-th of the k d nearest):

    ``mode="scalar"`` (dot-product heads, :math:`D = C_{out}/H`):

    .. math::
        a_{ijh} = \mathrm{softmax}_{j \in \mathcal{N}(i)}\Big(
        \tfrac{1}{\sqrt{D}}\, \mathbf{q}_{ih}^\top
        (\mathbf{k}_{jh} + \delta_{ijh})\Big),\qquad
        \mathbf{x}'_i = \mathbf{W}_o \Big[\sum_j a_{ijh}
        (\mathbf{v}_{jh} + \delta_{ijh})\Big]_{h=1}^{H}

    with :math:`\mathbf{q} = \mathbf{W}_q\mathbf{x}`,
    :math:`\mathbf{k} = \mathbf{W}_k\mathbf{x}`, :math:`\mathbf{v} =
    \mathbf{W}_v\mathbf{x}`.

    ``mode="vector"`` (Point Transformer vector attention, exactly PyG's
    ``PointTransformerConv``, whose weights :meth:`from_pyg` loads):

    .. math::
        \alpha_{ij} = \mathrm{softmax}_{j \in \mathcal{N}(i) \cup \{i\}}
        \big(\gamma(\mathbf{W}_{dst}\mathbf{x}_i - \mathbf{W}_{src}\mathbf{x}_j
        + \delta_{ij})\big),\qquad
        \mathbf{x}'_i = \sum_j \alpha_{ij} \odot (\mathbf{W}\mathbf{x}_j
        + \delta_{ij})

    channel-wise (:math:`\alpha_{ij} \in \mathbb{R}^{C_{out}}`), with
    :math:`\gamma` = ``attn_nn``, ``W`` = ``lin``, ``W_src`` = ``lin_src``,
    ``W_dst`` = ``lin_dst`` (no output projection). Like PyG, a point is always
    its own neighbour exactly once (``add_self_loops=True``).

    ``fused=True`` (default) runs the neighbour part through a chunked autograd
    function that saves only its inputs and recomputes the ``[N, K, C]``
    intermediates block by block in backward (:mod:`pointsam.nn._chunked`);
    ``fused=False`` is the plain dense-gather reference. Both give the same
    values and gradients. (A BatchNorm inside ``pos_nn``/``attn_nn`` in training
    mode needs whole-batch statistics, so the layer then takes the plain path.)
    In vector mode, when ``pos_nn`` and ``attn_nn`` are plain Linear/ReLU chains
    (the defaults, and PyG's ``MLP`` without norm; :func:`~.common.linear_chain`)
    and no attention weights are requested, the fused path on the CPU is a
    hand-written function with the backward written out
    (:mod:`pointsam.nn._vector_fused`), faster than the generic chunked one.

    Args:
        in_channels: Input size :math:`C_{in}`.
        out_channels: Output size :math:`C_{out}` (default: ``in_channels``),
            divisible by ``num_heads``.
        num_heads: Heads H. In vector mode they only group channels for the
            returned weights. (default: 8)
        k: Neighbours per point when ``nbr_idx`` is not given. (default: 16)
        dilation: Dilation rate of the kNN. (default: 1)
        mode: ``"scalar"`` or ``"vector"``. (default: ``"scalar"``)
        hidden_channels: Width of the default ``pos_nn``/``attn_nn``.
            (default: ``out_channels``)
        pos_nn: Module :math:`(*, 3) \to (*, C_{out})`; default
            ``MLP([3, hidden, C_out])``.
        attn_nn: Vector mode: module :math:`(*, C_{out}) \to (*, C_{out})`;
            default ``MLP([C_out, hidden, C_out])``; ``nn.Identity()`` for none.
        add_self_loops: Vector mode: every point attends to itself once.
            (default: ``True``)
        fused: Use the chunked recomputing path. (default: ``True``)
        chunk_size: Points per block on the fused path (default: about
            :math:`2^{19} / (K C_{out})` on the CPU, blocks that stay in cache,
            :math:`2^{17} / (K C_{out})` for the hand-written vector path, and
            :math:`2^{25} / (K C_{out})` on a GPU).

    Shapes:
        - **input:** x :math:`(N, C_{in})`, pos :math:`(N, 3)`,
          batch :math:`(N)` sorted (optional), nbr_idx / nbr_mask :math:`(N, K)`
          (optional)
        - **output:** :math:`(N, C_{out})`; with ``return_attention=True`` also
          ``{"attn": (N, K', H), "nbr_idx": (N, K')}``: the per-neighbour weights
          (scalar: per head; vector: the channel weights averaged over each head's
          :math:`C_{out}/H` channels) and the neighbours they belong to; masked
          neighbours have weight 0 and every row sums to 1 over :math:`K'`
          (:math:`K' = K`, or :math:`K + 1` in vector mode when a self loop had
          to be added).

    Example:
        >>> attn = LocalAttention(16, 32, num_heads=4, k=8)
        >>> x, pos = torch.randn(100, 16), torch.randn(100, 3)
        >>> out, w = attn(x, pos, return_attention=True)
        >>> out.shape, w["attn"].shape
        (torch.Size([100, 32]), torch.Size([100, 8, 4]))
        >>> LocalAttention(16, mode="vector", k=8)(x, pos).shape
        torch.Size([100, 16])
    """

    weight_kinds = {"attn": WeightKind.NEIGHBOUR,  # [N, K', H]
                    "nbr_idx": WeightKind.TABLE}  # [N, K']

    def __init__(self, in_channels: int, out_channels: int | None = None, *,
                 num_heads: int = 8, k: int = 16, dilation: int = 1,
                 mode: str = "scalar", hidden_channels: int | None = None,
                 pos_nn: nn.Module | None = None, attn_nn: nn.Module | None = None,
                 add_self_loops: bool = True, fused: bool = True,
                 chunk_size: int | None = None,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        for v, name in ((in_channels, "in_channels"), (out_channels, "out_channels"),
                        (num_heads, "num_heads"), (k, "k"), (dilation, "dilation")):
            ops.check_positive_int(v, name)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if out_channels % num_heads:
            raise ValueError(f"out_channels ({out_channels}) must be divisible by "
                             f"num_heads ({num_heads})")
        if chunk_size is not None:
            ops.check_positive_int(chunk_size, "chunk_size")
        dd = {"device": device, "dtype": dtype}
        hidden = out_channels if hidden_channels is None else hidden_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_heads, self.head_dim = num_heads, out_channels // num_heads
        self.k, self.dilation, self.mode = k, dilation, mode
        self.add_self_loops = add_self_loops
        self.fused, self.chunk_size = fused, chunk_size
        self.pos_nn = pos_nn if pos_nn is not None else MLP([3, hidden, out_channels],
                                                           **dd)
        if mode == "scalar":
            if attn_nn is not None:
                raise ValueError("attn_nn is only used with mode='vector'")
            self.lin_q = nn.Linear(in_channels, out_channels, bias=False, **dd)
            self.lin_k = nn.Linear(in_channels, out_channels, bias=False, **dd)
            self.lin_v = nn.Linear(in_channels, out_channels, bias=False, **dd)
            self.proj = nn.Linear(out_channels, out_channels, **dd)
        else:
            self.attn_nn = attn_nn if attn_nn is not None else MLP(
                [out_channels, hidden, out_channels], **dd)
            self.lin = nn.Linear(in_channels, out_channels, bias=False, **dd)
            self.lin_src = nn.Linear(in_channels, out_channels, bias=False, **dd)
            self.lin_dst = nn.Linear(in_channels, out_channels, bias=False, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    # ------------------------------------------------------------------ kernels
    def _scalar_kernel(self, dst: Sequence[Tensor], src_j: Sequence[Tensor],
                       mask: Tensor | None, want: bool) -> tuple[Tensor, Tensor | None]:
        h, d = self.num_heads, self.head_dim
        q, pos_i = dst  # [n, C], [n, 3]
        k_j, v_j, pos_j = src_j  # [n, K, C], [n, K, C], [n, K, 3]
        delta = self.pos_nn(pos_i.unsqueeze(1) - pos_j)  # [n, K, C]
        key = (k_j + delta).unflatten(-1, (h, d))  # [n, K, H, D]
        logits = torch.einsum("nhd,nkhd->nkh", q.unflatten(-1, (h, d)), key)
        a = _masked_softmax(logits * (d ** -0.5), mask).to(q.dtype)  # [n, K, H]
        val = (v_j + delta).unflatten(-1, (h, d))  # [n, K, H, D]
        out = torch.einsum("nkh,nkhd->nhd", a, val).flatten(1)  # [n, C]
        return out, (a if want else None)

    def _vector_kernel(self, dst: Sequence[Tensor], src_j: Sequence[Tensor],
                       mask: Tensor | None, want: bool) -> tuple[Tensor, Tensor | None]:
        a_dst, pos_i = dst  # [n, C], [n, 3]
        a_src, v_j, pos_j = src_j  # [n, K, C], [n, K, C], [n, K, 3]
        delta = self.pos_nn(pos_i.unsqueeze(1) - pos_j)  # [n, K, C]
        h = delta - a_src  # [n, K, C]
        h += a_dst.unsqueeze(1)  # in place: no backward needs h's value
        logits = self.attn_nn(h)  # [n, K, C]
        a = _masked_softmax(logits, mask).to(v_j.dtype)  # [n, K, C]
        if torch.is_grad_enabled():
            out = (a * (v_j + delta)).sum(1)  # [n, C]
        else:  # forward of the fused path: reuse the buffers
            out = (v_j + delta).mul_(a).sum(1)  # [n, C]
        w = None
        if want:
            w = a.unflatten(-1, (self.num_heads, self.head_dim)).mean(-1)  # [n, K, H]
        return out, w

    def _linear_chains(self, x: Tensor) -> tuple[list[Layer], list[Layer]] | None:
        """``(theta, gamma)`` as :func:`~.common.linear_chain` layers when the
        hand-written fused vector path (:mod:`._vector_fused`) applies: fused,
        not traced, on the CPU, float32/float64 outside autocast, Linear/ReLU
        ``pos_nn`` (3 -> C) and ``attn_nn`` (C -> C, or none), no hooks on the
        linear maps; else None (the generic chunked path)."""
        if not self.fused or tracing() or x.device.type != "cpu" or \
                x.dtype not in (torch.float32, torch.float64) or \
                torch.is_autocast_enabled("cpu"):
            return None  # (CUDA: not measured yet, the generic path)
        pos_layers, attn_layers = linear_chain(self.pos_nn), linear_chain(self.attn_nn)
        if not pos_layers or attn_layers is None or any(
                linear_chain(m) is None for m in (self.lin_dst, self.lin_src, self.lin)):
            return None
        c, ws = self.out_channels, [w for w, _, _ in pos_layers + attn_layers]
        if ws[0].size(1) != 3 or pos_layers[-1][0].size(0) != c or ws[-1].size(0) != c:
            return None  # theta: 3 -> C, gamma: C -> C
        if any(p.dtype != x.dtype or p.device != x.device
               for w, b, _ in pos_layers + attn_layers for p in (w, b) if p is not None):
            return None
        return pos_layers, attn_layers

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, pos: Tensor, batch: Tensor | None = None,
                nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None, *,
                return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        x = self.check_forward(x, pos, batch, nbr_idx, nbr_mask)
        nbr_idx, nbr_mask = neighbours(pos, batch, self.k, self.dilation,
                                       nbr_idx, nbr_mask)  # [N, K], [N, K]
        pos = pos.to(x.dtype)
        chunk = self.chunk_size or default_chunk(nbr_idx.size(1), self.out_channels,
                                                 device=x.device)
        if self.mode == "scalar":
            q = self.lin_q(x)  # [N, C]
            src = [self.lin_k(x), self.lin_v(x), pos]  # [N, C], [N, C], [N, 3]
            kernel, modules = self._scalar_kernel, [self.pos_nn]
        else:
            if self.add_self_loops:
                nbr_idx, nbr_mask = add_self_loops(nbr_idx, nbr_mask)  # [N, K']
            chains = None if want else self._linear_chains(x)
            if chains is not None:  # the hand-written fast path
                mask = None if bool(nbr_mask.all()) else nbr_mask  # one host sync
                if self.chunk_size is None:  # no autograd graph per block to
                    # amortise: blocks of ~2^17 elements, temporaries in L2 cache
                    chunk = default_chunk(nbr_idx.size(1), self.out_channels, 1 << 17)
                out = fused_vector_attention(
                    x, self.lin_dst.weight, self.lin_src.weight, self.lin.weight, pos,
                    nbr_idx, mask, *chains, chunk=chunk)  # [N, C]
                return self.finish(out, None, return_attention)
            q = self.lin_dst(x)  # [N, C]
            src = [self.lin_src(x), self.lin(x), pos]  # [N, C], [N, C], [N, 3]
            kernel, modules = self._vector_kernel, [self.pos_nn, self.attn_nn]
        out, a = chunked_neighbour_apply(kernel, [q, pos], src, nbr_idx, nbr_mask, modules,
                                         chunk=chunk, want=want, fused=self.fused,
                                         drop_full_mask=True)
        if self.mode == "scalar":
            out = self.proj(out)  # [N, C_out]
        attn = {"attn": a, "nbr_idx": nbr_idx} if want and a is not None else None
        return self.finish(out, attn, return_attention)

    # ------------------------------------------------------------------ PyG
    @classmethod
    def from_pyg(cls, conv: nn.Module, *, k: int = 16, num_heads: int = 1,
                 **kwargs: Any) -> LocalAttention:
        r"""A vector-mode :class:`LocalAttention` with the weights of a PyG
        ``PointTransformerConv``.

        Parameter mapping (copies, not shared): ``conv.lin -> lin``,
        ``conv.lin_src -> lin_src``, ``conv.lin_dst -> lin_dst``,
        ``conv.pos_nn -> pos_nn`` (deep copy), ``conv.attn_nn -> attn_nn`` (deep
        copy, ``nn.Identity()`` when ``None``), ``conv.add_self_loops ->
        add_self_loops``. Given the same neighbourhood (PyG's ``edge_index`` is
        ``(nbr_idx[i, j], i)`` over the valid entries), the outputs are equal.

        Args:
            conv: A ``torch_geometric.nn.PointTransformerConv`` with integer
                ``in_channels`` (not bipartite).
            k: Neighbours when ``nbr_idx`` is not given. (default: 16)
            num_heads: Channel groups of the returned weights. (default: 1)
            **kwargs: Other constructor arguments (``fused``, ``chunk_size``...).
        """
        if not isinstance(conv.in_channels, int) or conv.in_channels < 1:
            raise ValueError("from_pyg needs a conv with one integer in_channels "
                             f"(not bipartite / lazy), got {conv.in_channels!r}")
        lin = conv.lin
        dd = {"device": lin.weight.device, "dtype": lin.weight.dtype}
        attn_nn = copy.deepcopy(conv.attn_nn) if conv.attn_nn is not None \
            else nn.Identity()
        m = cls(conv.in_channels, conv.out_channels, num_heads=num_heads, k=k,
                mode="vector", pos_nn=copy.deepcopy(conv.pos_nn), attn_nn=attn_nn,
                add_self_loops=conv.add_self_loops, **kwargs, **dd)
        with torch.no_grad():
            m.pos_nn.load_state_dict(conv.pos_nn.state_dict())
            if conv.attn_nn is not None:
                m.attn_nn.load_state_dict(conv.attn_nn.state_dict())
            for name in ("lin", "lin_src", "lin_dst"):
                getattr(m, name).weight.copy_(getattr(conv, name).weight)
        return m

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, mode={self.mode!r}, "
             f"num_heads={self.num_heads}, k={self.k}")
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        if not self.fused:
            s += ", fused=False"
        return s

