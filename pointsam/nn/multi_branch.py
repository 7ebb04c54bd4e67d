r"""Several attention branches in parallel, fused per point by LAFF."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import ops
from .base import PointModule, WeightKind, channels_of, takes_neighbours
from .common import Device, reset_children
from .laff import LAFF

__all__ = ["MultiBranchAttention"]


class MultiBranchAttention(PointModule):
    r"""Attention branches run in parallel on the same points and fused per
    point, the multi-branch design of the stereo-attention family (channel,
    spatial, local-global, axial, temporal, cross-modal branches side by side).

    Each branch :math:`\mathcal{A}_i` sees the same
    :math:`(\mathbf{x}, \mathbf{p}, \mathrm{batch})` and the same neighbour
    table; the outputs are fused by :class:`LAFF` (``fusion="laff"``, a
    convex combination per point and head) or a linear layer over their
    concatenation (``fusion="linear"``):

    .. math::
        \mathbf{f}_i = \mathcal{A}_i(\mathbf{x}, \mathbf{p}),\qquad
        \mathbf{x}' = \mathrm{LAFF}(\mathbf{f}_1, \dots, \mathbf{f}_m)
        \quad\text{or}\quad
        \mathbf{x}' = \mathbf{W}\,[\mathbf{f}_1 \Vert \dots \Vert \mathbf{f}_m]
        + \mathbf{b}

    Neighbourhood sharing: a ``nbr_idx``/``nbr_mask`` given to forward goes to
    every branch; with ``k`` set and no table given, one
    :func:`pointsam.ops.knn` table of k neighbours is computed and shared;
    otherwise each branch builds its own (needed for branches with their own
    metric, such as :class:`AxialAttention` or dilated ones). A branch whose
    :attr:`~PointModule.accepts_neighbours` is ``False`` (AxialAttention) never
    gets the table. Extra keyword arguments of forward (``past_x=``,
    ``tokens=``...) go to the branches that declare them in
    :attr:`~PointModule.extra_inputs`.

    Args:
        branches: The m >= 1 branch modules, each ``(x, pos, batch, nbr_idx,
            nbr_mask) -> (N, C_i)``.
        fusion: ``"laff"`` or ``"linear"``. (default: ``"laff"``)
        out_channels: Output size; ``None`` means the first branch's.
            (default: ``None``)
        num_heads: Heads of the LAFF fusion (must divide ``out_channels``).
            (default: 8)
        branch_channels: Output size of each branch, for branches without an
            ``out_channels``/``channels`` attribute. (default: ``None``)
        k: Size of the shared neighbour table, or ``None``. (default: ``None``)

    Shapes:
        - **input:** x :math:`(N, C)`, pos :math:`(N, 3)`, batch :math:`(N)`
          sorted (optional), nbr_idx / nbr_mask :math:`(N, K)` (optional),
          extra keyword arguments of the branches
        - **output:** :math:`(N, C_{out})`; with ``return_attention=True`` also
          ``{"a": (N, H, m)}`` (the LAFF weights; absent for linear fusion)
          and each branch's weights under ``"branches.<i>.<name>"``

    Example:
        >>> from pointsam.nn import ChannelGate, PointGate
        >>> mb = MultiBranchAttention([ChannelGate(32), PointGate(32, k=8)],
        ...                           num_heads=4)
        >>> out, attn = mb(torch.randn(40, 32), torch.randn(40, 3),
        ...                return_attention=True)
        >>> out.shape, sorted(attn)
        (torch.Size([40, 32]), ['a', 'branches.0.channel', 'branches.1.point'])
    """

    def __init__(self, branches: Sequence[nn.Module], *, fusion: str = "laff",
                 out_channels: int | None = None, num_heads: int = 8,
                 branch_channels: Sequence[int] | None = None, k: int | None = None,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if isinstance(branches, nn.Module) or len(branches) < 1:
            raise ValueError("branches must be a non-empty list of modules")
        for i, br in enumerate(branches):
            if not isinstance(br, nn.Module):
                raise TypeError(f"branch {i} is a {type(br).__name__}, not an "
                                f"nn.Module")
        if fusion not in ("laff", "linear"):
            raise ValueError(f"fusion must be 'laff' or 'linear', got {fusion!r}")
        if branch_channels is None:
            chans = [channels_of(br)[1] for br in branches]
            for i, c in enumerate(chans):
                if c is None:
                    raise ValueError(f"cannot read the output channels of branch {i} "
                                     f"({type(branches[i]).__name__}); pass "
                                     f"branch_channels=")
            branch_channels = [int(c) for c in chans if c is not None]
        branch_channels = list(branch_channels)
        if len(branch_channels) != len(branches):
            raise ValueError(f"branch_channels has {len(branch_channels)} entries for "
                             f"{len(branches)} branches")
        out_channels = branch_channels[0] if out_channels is None else out_channels
        ops.check_positive_int(out_channels, "out_channels")
        if k is not None:
            ops.check_positive_int(k, "k")
        in_c = {channels_of(br)[0] for br in branches} - {None}
        if len(in_c) > 1:
            raise ValueError(f"branches expect different input channels {sorted(in_c)}"
                             f"; they all run on the same x")
        dd = {"device": device, "dtype": dtype}
        self.branches = nn.ModuleList(branches)
        self.branch_channels = branch_channels
        self.in_channels = in_c.pop() if in_c else None
        self.out_channels = out_channels
        self.fusion = fusion
        self.num_heads = num_heads
        self.k = k
        self.fuse: nn.Module
        if fusion == "laff":
            self.fuse = LAFF(branch_channels, out_channels, num_heads=num_heads, **dd)
        else:
            self.fuse = nn.Linear(sum(branch_channels), out_channels, **dd)
        self._accepts_return = [isinstance(br, PointModule) for br in branches]
        self._nbr = [takes_neighbours(br) for br in branches]
        self._kw: list[frozenset[str]] = [
            br.extra_inputs if isinstance(br, PointModule) else frozenset()
            for br in branches]
        self.extra_inputs = frozenset().union(*self._kw)
        kinds = {f"branches.{i}.{key}": kind  # each branch's weights, re-exported
                 for i, br in enumerate(branches) if isinstance(br, PointModule)
                 for key, kind in br.weight_kinds.items()}
        if fusion == "laff":
            kinds["a"] = WeightKind.FUSION  # [N, H, m]
        self.weight_kinds = kinds
        self.branch_names = tuple(type(br).__name__ for br in branches)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor | None = None,
                nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None, *,
                return_attention: bool = False, **kwargs: Any
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        self.check_forward(x, pos, batch, nbr_idx, nbr_mask)
        with ops.trusted():  # checked once above: children, knn and fusion do not check again
            if nbr_idx is None and self.k is not None:
                nbr_idx, nbr_mask = ops.knn(pos, self.k, batch)  # [N, k], [N, k]
            for name in kwargs:
                if name not in self.extra_inputs:
                    raise TypeError(f"no branch accepts the keyword argument {name!r}")
            feats: list[Tensor] = []
            attn: dict[str, Tensor] = {}
            for i, br in enumerate(self.branches):
                kw = self._kw[i]
                extra = {n: v for n, v in kwargs.items() if n in kw}
                if nbr_idx is not None and self._nbr[i]:
                    extra.update(nbr_idx=nbr_idx, nbr_mask=nbr_mask)
                if want and self._accepts_return[i]:
                    f, a = br(x, pos, batch, return_attention=True, **extra)  # [N, C_i]
                    attn.update({f"branches.{i}.{n}": v for n, v in a.items()})
                else:
                    f = br(x, pos, batch, **extra)  # [N, C_i]
                if f.dim() != 2 or f.size(1) != self.branch_channels[i]:
                    raise ValueError(f"branch {i} returned {list(f.shape)}, expected "
                                     f"[N, {self.branch_channels[i]}]")
                feats.append(f)
            if self.fusion == "laff":
                if want:
                    out, a = self.fuse(feats, return_attention=True)  # [N, C_out]
                    attn["a"] = a["a"]  # [N, H, m]
                else:
                    out = self.fuse(feats)  # [N, C_out]
            else:
                out = self.fuse(torch.cat(feats, dim=-1))  # [N, C_out]
            return self.finish(out, attn if want else None, return_attention)

    def extra_repr(self) -> str:
        return (f"{len(self.branches)} branches {self.branch_channels} -> "
                f"{self.out_channels}, fusion={self.fusion!r}")
