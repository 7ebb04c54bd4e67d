r"""PointNet++ layers: set abstraction, global set abstraction, feature propagation.

From `"PointNet++: Deep Hierarchical Feature Learning on Point Sets in a Metric
Space" <https://arxiv.org/abs/1706.02413>`_ (Qi et al., 2017). Ragged batches,
channels last; the backbone that stacks them is
:class:`pointsam.models.pointnet2.PointNet2`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from ..nn import MLP, LAFFMultiLevel
from ..nn.common import Device, block_elements, reset_children, run_folded
from ..nn.network import (
    bind_geometry,
    collect_geometry,
    network_mode,
    tracing,
)
from .attention import apply_attention

__all__ = ["SetAbstraction", "GlobalSetAbstraction", "FeaturePropagation"]

_GROUPINGS = ("ball", "knn")
_FUSIONS = ("concat", "laff")


def _bn_mlp(channels: Sequence[int], **dd: Any) -> MLP:
    """Shared MLP with BatchNorm and ReLU after every layer (PointNet++'s convs)."""
    return MLP(list(channels), norm_layer=nn.BatchNorm1d, plain_last=False, **dd)


def interpolate(x: Tensor, idx: Tensor, w: Tensor) -> Tensor:
    r"""Weighted sum of neighbour rows, :math:`\sum_k w_{ik} \mathbf{x}_{idx_{ik}}`.

    One ``embedding_bag`` (no ``[N, k, C]`` tensor) for float32/float64 in eager
    mode; a gather, product and sum otherwise (half precision, tracing).

    Shapes:
        - **input:** x :math:`(S, C)`, idx / w :math:`(N, k)`
        - **output:** :math:`(N, C)`
    """
    if x.dtype in (torch.float32, torch.float64) and not tracing():
        return F.embedding_bag(idx, x, per_sample_weights=w.to(x.dtype), mode="sum")
    return (w.unsqueeze(-1).to(x.dtype) * x[idx]).sum(dim=1)  # [N, C]


def group_max(layers: list[tuple[Tensor, Tensor | None, bool]], x: Tensor | None,
              pos: Tensor, centre: Tensor, nbr: Tensor) -> Tensor:
    r"""The eval fast path of one set-abstraction scale,
    :math:`\max_k h([\mathbf{x}_j, \mathbf{p}_j - \mathbf{c}_i])` on
    :meth:`MLP.folded` layers.

    At one torch thread the centres go through in blocks whose widest
    ``[rows, K, C]`` temporary holds about ``2^18`` elements, so each layer's
    output is still in cache for the next one (on a 66k-point scan about 3x
    faster than whole-tensor layers, whose temporaries are tens of MB); see
    :func:`block_elements`. With :math:`C_{in} \ge 16` features the
    first layer is split, :math:`W[\mathbf{x}_j, \mathbf{p}_j - \mathbf{c}_i] =
    (W_x \mathbf{x})_j + W_p(\mathbf{p}_j - \mathbf{c}_i)`: :math:`W_x
    \mathbf{x}` once per point, then gathered (the relative position stays an
    exact difference). The last ReLU comes after the maximum (they commute).

    Shapes:
        - **input:** x :math:`(N, C_{in})` or ``None``, pos :math:`(N, 3)`,
          centre :math:`(S, 3)`, nbr :math:`(S, K)`
        - **output:** :math:`(S, C_{out})`
    """
    s, k = nbr.shape
    (w0, b0, relu0), rest = layers[0], layers[1:]
    c_in = 0 if x is None else x.size(1)
    split = x is not None and c_in >= 16
    if split:
        u = F.linear(x, w0[:, :c_in])  # [N, C_1]
        w_rel = w0[:, c_in:].t()  # [3, C_1]
    else:
        xp = pos if x is None else torch.cat([x, pos], dim=1)  # [N, C_in + 3]
        off = centre if x is None else torch.cat(
            [centre.new_zeros(s, c_in), centre], dim=1)  # [S, C_in + 3]
    rows = max(1, block_elements() // (k * max(w.size(0) for w, _, _ in layers)))
    out = centre.new_empty(s, layers[-1][0].size(0))  # [S, C_out]
    for a in range(0, s, rows):
        e = min(s, a + rows)
        flat = nbr[a:e].reshape(-1)  # [n' K]
        if split:
            rel = pos.index_select(0, flat).view(e - a, k, 3) \
                - centre[a:e].unsqueeze(1)  # [n', K, 3]
            h = u.index_select(0, flat).addmm_(rel.view(-1, 3), w_rel)  # [n' K, C_1]
            if b0 is not None:
                h = h.add_(b0)
            h = h.view(e - a, k, -1)  # [n', K, C_1]
        else:
            h = xp.index_select(0, flat).view(e - a, k, -1) \
                - off[a:e].unsqueeze(1)  # [n', K, C_in + 3]
            h = F.linear(h, w0, b0)  # [n', K, C_1]
        if rest:
            out[a:e] = run_folded(h.relu_() if relu0 else h, rest, max_dim=1)
        else:
            h = h.amax(1)  # [n', C_1]
            out[a:e] = h.relu_() if relu0 else h
    return out


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
                 attn_k: int = 16,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
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
        dd = {"device": device, "dtype": dtype}
        self.mlps = nn.ModuleList(_bn_mlp([in_channels + 3, *m], **dd) for m in mlps)
        widths = [m[-1] for m in mlps]
        self.out_channels = sum(widths)
        self.fuse = (LAFFMultiLevel(widths, self.out_channels, num_heads=fusion_heads,
                                    **dd)
                     if fusion == "laff" and len(widths) > 1 else None)
        self.attn = attn.to(**dd) if attn is not None else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, x: Tensor | None, pos: Tensor, batch: Tensor,
                batch_size: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        b = ops.batch_size_of(batch, batch_size)
        plan = self.plan(pos, batch, b)
        with network_mode(b, bind_geometry(self, plan)):
            return self.network(x, pos, batch, plan)

    def plan(self, pos: Tensor, batch: Tensor, batch_size: int) -> dict[str, Tensor]:
        r"""The stage's geometry: ``idx`` :math:`(S)` (FPS centres), ``nbr<s>``
        :math:`(S, K_s)` per scale (masked entries repeat the centre, as the
        reference ball query pads), ``attn_idx`` / ``attn_mask`` :math:`(S, k)`
        and the attention module's own tables (``attn.*``)."""
        b = batch_size
        if isinstance(self.sample, float):
            idx = ops.fps(pos, batch, ratio=self.sample, batch_size=b)  # [S]
        else:
            idx = ops.fps(pos, batch, num=self.sample, batch_size=b)  # [S]
        centre, cbatch = pos[idx], batch[idx]  # [S, 3], [S]
        plan = {"idx": idx}
        for s in range(len(self.mlps)):
            if self.radii is not None:
                nbr, mask = ops.radius(pos, self.radii[s], batch, query=centre,
                                       query_batch=cbatch,
                                       max_num_neighbors=self.ks[s], batch_size=b)
            else:
                nbr, mask = ops.knn(pos, self.ks[s], batch, query=centre,
                                    query_batch=cbatch, batch_size=b)
            # pad with the nearest (the centre itself), as the reference ball query
            plan[f"nbr{s}"] = torch.where(mask, nbr, nbr[:, :1])  # [S, K]
        if self.attn is not None:
            a_idx, a_mask = ops.knn(centre, self.attn_k, cbatch, batch_size=b)
            plan["attn_idx"], plan["attn_mask"] = a_idx, a_mask  # [S, k] each
            plan.update(collect_geometry(self.attn, centre, cbatch, b, "attn"))
        return plan

    def network(self, x: Tensor | None, pos: Tensor, batch: Tensor,
                plan: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """The stage on its :meth:`plan`: gathers, shared MLPs, max, attention."""
        idx = plan["idx"]
        centre, cbatch = pos[idx], batch[idx]  # [S, 3], [S]
        feats = []
        for s, mlp in enumerate(self.mlps):
            nbr = plan[f"nbr{s}"]  # [S, K]
            fast = isinstance(mlp, MLP) and mlp.fused and not tracing()
            layers = mlp.folded() if fast else None
            if layers is not None:  # eval fast path, same values
                feats.append(group_max(layers, x, pos, centre, nbr))  # [S, C_s]
                continue
            h = pos[nbr] - centre.unsqueeze(1)  # [S, K, 3]
            if x is not None:
                h = torch.cat([x[nbr], h], dim=-1)  # [S, K, C_in + 3]
            feats.append(mlp(h).max(dim=1).values)  # [S, C_s]
        if self.fuse is not None:
            out = self.fuse(feats)  # [S, C_out]
        else:
            out = feats[0] if len(feats) == 1 else torch.cat(feats, dim=-1)  # [S, C]
        if self.attn is not None:
            out = apply_attention(self.attn, out, centre, cbatch, plan["attn_idx"],
                                  plan["attn_mask"])
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

    def __init__(self, in_channels: int, mlp: Sequence[int],
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.mlp = _bn_mlp([in_channels + 3, *mlp], **dd)
        self.in_channels, self.out_channels = in_channels, list(mlp)[-1]
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}"

    def forward(self, x: Tensor | None, pos: Tensor, batch: Tensor,
                batch_size: int | None = None) -> Tensor:
        return self.network(x, pos, batch, ops.batch_size_of(batch, batch_size))

    def network(self, x: Tensor | None, pos: Tensor, batch: Tensor,
                batch_size: int) -> Tensor:
        """Forward without checks, for a :meth:`PointNet2.network`."""
        h = pos if x is None else torch.cat([x, pos], dim=-1)  # [N, C_in + 3]
        return ops.segment_max(self.mlp(h), batch, batch_size)  # [B, C_out]


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

    def __init__(self, in_channels: int, mlp: Sequence[int], *, k: int = 3,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        self.mlp = _bn_mlp([in_channels, *mlp], **dd)
        self.in_channels, self.out_channels, self.k = in_channels, list(mlp)[-1], k
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor, skip: Tensor | None,
                pos_fine: Tensor, batch_fine: Tensor,
                batch_size: int | None = None) -> Tensor:
        return self.network(x, skip, self.plan(pos, batch, pos_fine, batch_fine,
                                               batch_size))

    def plan(self, pos: Tensor, batch: Tensor, pos_fine: Tensor, batch_fine: Tensor,
             batch_size: int | None = None) -> dict[str, Tensor]:
        """The interpolation: ``idx`` :math:`(N, k)` coarse neighbours and their
        normalised weights ``w`` :math:`(N, k)` (0 where masked)."""
        idx, mask = ops.knn(pos, self.k, batch, query=pos_fine, query_batch=batch_fine,
                            batch_size=batch_size)  # [N, k]
        # weights in at least float32: 1 / 1e-8 overflows float16 (inf / inf = NaN)
        wt = torch.promote_types(pos.dtype, torch.float32)
        d2 = ((pos_fine.to(wt).unsqueeze(1) - pos.to(wt)[idx]) ** 2).sum(-1)  # [N, k]
        w = (1.0 / (d2 + 1e-8)).masked_fill(~mask, 0.0)
        return {"idx": idx, "w": w / w.sum(dim=1, keepdim=True)}  # [N, k] each

    def network(self, x: Tensor, skip: Tensor | None,
                plan: dict[str, Tensor]) -> Tensor:
        """Interpolate with the :meth:`plan`'s weights, concatenate, shared MLP."""
        idx, w = plan["idx"], plan["w"]  # [N, k] each
        fast = isinstance(self.mlp, MLP) and self.mlp.fused and not tracing()
        layers = self.mlp.folded() if fast else None
        if layers is not None:
            # the first linear layer commutes with the interpolation: apply it
            # to the S coarse points, then interpolate its C_1 outputs
            (w0, b0, relu), rest = layers[0], layers[1:]
            c = x.size(-1)
            u = F.linear(x, w0[:, :c])  # [S, C_1]
            w_skip = w0[:, c:].t()  # [C_skip, C_1]
            n = idx.size(0)
            rows = max(1, block_elements() // max(lw.size(0) for lw, _, _ in layers))
            out = u.new_empty(n, layers[-1][0].size(0))  # [N, C_out]
            for a in range(0, n, rows):  # blocks of rows stay in cache
                e = min(n, a + rows)
                h = interpolate(u, idx[a:e], w[a:e])  # [n', C_1]
                if skip is not None:
                    h = h.addmm_(skip[a:e], w_skip)  # + W_skip s_i
                if b0 is not None:
                    h = h.add_(b0)
                out[a:e] = run_folded(h.relu_() if relu else h, rest)  # [n', C_out]
            return out
        h = (w.unsqueeze(-1).to(x.dtype) * x[idx]).sum(dim=1)  # [N, C]
        if skip is not None:
            h = torch.cat([h, skip], dim=-1)  # [N, C + C_skip]
        return self.mlp(h)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, k={self.k}"
