r"""Per-axis (x/y/z) attention over anisotropic neighbourhoods."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import ops
from .base import PointModule, WeightKind
from .common import Device, reset_children
from .laff import LAFF
from .local_attention import LocalAttention
from .network import network_tables

__all__ = ["AxialAttention", "axis_scales"]

_AXES = ("x", "y", "z")


def axis_scales(stretch: float) -> list[tuple[float, float, float]]:
    r"""The metric stretch of each axis tube: axis a keeps 1, the others ``stretch``.

    Example:
        >>> axis_scales(4.0)
        [(1.0, 4.0, 4.0), (4.0, 1.0, 4.0), (4.0, 4.0, 1.0)]
    """
    s = float(stretch)
    out: list[tuple[float, float, float]] = []
    for a in range(3):
        out.append((1.0 if a == 0 else s, 1.0 if a == 1 else s, 1.0 if a == 2 else s))
    return out


class AxialAttention(PointModule):
    r"""Axial attention for points: attention along x, y and z tubes, fused per
    point by LAFF (the point analogue of `"Axial Attention"
    <https://arxiv.org/abs/1912.12180>`_ and of CCNet's criss-cross attention).

    For each axis a, :math:`\mathcal{N}_a(i)` are the k nearest points under the
    anisotropic metric

    .. math::
        d_a^2(i, j) = (p_{ia} - p_{ja})^2 + s^2 \sum_{b \ne a} (p_{ib} - p_{jb})^2,

    a tube elongated along a (``ops.knn(pos, k, scale=...)``). A scalar
    :class:`~pointsam.nn.LocalAttention` (relative-position encoding on keys and
    values) runs over each tube, :math:`\mathbf{y}^a = \mathrm{Local}_a(\mathbf{x};
    \mathcal{N}_a)`, and a per-point :class:`LAFF` fuses them:

    .. math::
        \mathbf{x}'_i = \mathrm{LAFF}(\mathbf{y}^x_i, \mathbf{y}^y_i,
        \mathbf{y}^z_i),\qquad w_{ia} = \tfrac{1}{H} \sum_h a_{hia}

    where :math:`w_i \in \Delta^2` says which direction point i relies on.

    Args:
        in_channels: Input size :math:`C_{in}`.
        out_channels: Output size (default: ``in_channels``), divisible by
            ``num_heads``.
        num_heads: Heads of the branches and of LAFF. (default: 8)
        k: Neighbours per tube. (default: 16)
        stretch: Metric stretch :math:`s \ge 1` across the tube. (default: 4.0)

    Shapes:
        - **input:** x :math:`(N, C_{in})`, pos :math:`(N, 3)`, batch :math:`(N)`
          (the tubes are computed here, so ``nbr_idx`` must be ``None``)
        - **output:** :math:`(N, C_{out})`; with ``return_attention=True`` also
          ``{"axis": (N, 3), "laff": (N, H, 3), "x"/"y"/"z": (N, K, H)}``

    Example:
        >>> m = AxialAttention(16, 32, num_heads=4, k=8)
        >>> out, w = m(torch.randn(80, 16), torch.randn(80, 3), return_attention=True)
        >>> out.shape, w["axis"].shape
        (torch.Size([80, 32]), torch.Size([80, 3]))
    """

    accepts_neighbours = False  # builds its own tubes, refuses a shared table
    weight_kinds = {"x": WeightKind.AXIS_TUBE, "y": WeightKind.AXIS_TUBE,
                    "z": WeightKind.AXIS_TUBE,  # [N, K, H] each
                    "laff": WeightKind.FUSION,  # [N, H, 3]
                    "axis": WeightKind.AXIS}  # [N, 3]
    branch_names = _AXES

    def __init__(self, in_channels: int, out_channels: int | None = None, *,
                 num_heads: int = 8, k: int = 16, stretch: float = 4.0,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        ops.check_positive_int(k, "k")
        if not (isinstance(stretch, (int, float)) and stretch >= 1.0
                and stretch < float("inf")):
            raise ValueError(f"stretch must be a finite number >= 1, got {stretch!r}")
        dd = {"device": device, "dtype": dtype}
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_heads, self.k, self.stretch = num_heads, k, float(stretch)
        self.branches = nn.ModuleList(
            LocalAttention(in_channels, out_channels, num_heads=num_heads, k=k, **dd)
            for _ in range(3))
        self.fuse = LAFF([out_channels] * 3, out_channels, num_heads=num_heads, **dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    geometry_keys = ("x_idx", "x_mask", "y_idx", "y_mask", "z_idx", "z_mask")

    def plan_geometry(self, pos: Tensor, batch: Tensor,
                      batch_size: int) -> dict[str, Tensor]:
        """The three tubes, ``<axis>_idx`` / ``<axis>_mask`` :math:`(N, K)`."""
        out: dict[str, Tensor] = {}
        for name, scale in zip(_AXES, axis_scales(self.stretch)):
            idx, mask = ops.knn(pos, self.k, batch, scale=scale,
                                batch_size=batch_size)  # [N, K], [N, K]
            out[f"{name}_idx"], out[f"{name}_mask"] = idx, mask
        return out

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor | None = None,
                nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None, *,
                return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        if nbr_idx is not None or nbr_mask is not None:  # accepts_neighbours = False
            raise ValueError("AxialAttention builds its own anisotropic "
                             "neighbourhoods; pass nbr_idx=None")
        x = self.check_forward(x, pos, batch)
        with ops.trusted():  # checked once above: children, knn and fusion do not check again
            attn: dict[str, Tensor] = {}
            ys = []
            geo = network_tables(self)  # inside a network: the plan's tubes
            for name, scale, branch in zip(_AXES, axis_scales(self.stretch), self.branches):
                if geo is not None:
                    idx, mask = geo[f"{name}_idx"], geo[f"{name}_mask"]  # [N, K] each
                else:
                    idx, mask = ops.knn(pos, self.k, batch, scale=scale)  # [N, K], [N, K]
                if want:
                    y, a = branch(x, pos, batch, idx, mask, return_attention=True)
                    attn[name] = a["attn"]  # [N, K, H]
                else:
                    y = branch(x, pos, batch, idx, mask)  # [N, C_out]
                ys.append(y)
            if want:
                out, fa = self.fuse(ys, return_attention=True)
                attn["laff"] = fa["a"]  # [N, H, 3]
                attn["axis"] = fa["a"].mean(-2)  # [N, 3]
                return self.finish(out, attn, return_attention)
            return self.finish(self.fuse(ys), None, return_attention)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, num_heads={self.num_heads}, "
                f"k={self.k}, stretch={self.stretch}")
