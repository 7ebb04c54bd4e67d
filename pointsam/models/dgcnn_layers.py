r"""DGCNN layers: EdgeConv and the spatial transform network.

From `"Dynamic Graph CNN for Learning on Point Clouds"
<https://arxiv.org/abs/1801.07829>`_ (Wang et al., 2019). The backbone that
stacks them is :class:`pointsam.models.dgcnn.DGCNN`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from ..nn.common import Device, reset_children

__all__ = ["EdgeConv", "SpatialTransform"]


class EdgeConv(nn.Module):
    r"""EdgeConv: an MLP on edge features, max over the k neighbours.

    .. math::
        \mathbf{x}'_i = \max_{j \in \mathcal{N}(i)}
        h_\Theta\big([\mathbf{x}_i,\ \mathbf{x}_j - \mathbf{x}_i]\big)

    :math:`h_\Theta` is ``Linear -> BN -> LeakyReLU(0.2)`` per layer (no bias, as
    the reference 1x1 convolutions). The first layer is computed without
    building the :math:`2C` edge feature:
    :math:`\mathbf{W}[\mathbf{x}_i, \mathbf{x}_j - \mathbf{x}_i] = (\mathbf{W}_a -
    \mathbf{W}_b)\mathbf{x}_i + \mathbf{W}_b \mathbf{x}_j`.

    Args:
        in_channels: :math:`C_{in}`.
        channels: Widths of the layers of :math:`h_\Theta`.
        negative_slope: LeakyReLU slope. (default: 0.2)
        attn: The stage's attention module, kept here (so it is recorded as
            ``stages.<l>.attn``) and applied by :class:`DGCNN` with the shared
            coordinate table; ``None`` for none.

    Shapes:
        - **input:** x :math:`(N, C_{in})`, nbr_idx :math:`(N, K)` (entries that a
          mask would hide must repeat a valid neighbour, as :func:`ops.knn` does)
        - **output:** :math:`(N, C_{out})`

    Example:
        >>> conv = EdgeConv(3, [16, 32]).eval()
        >>> x = torch.randn(10, 3)
        >>> conv(x, ops.knn(x, 4)[0]).shape
        torch.Size([10, 32])
    """

    def __init__(self, in_channels: int, channels: Sequence[int], *,
                 negative_slope: float = 0.2, attn: nn.Module | None = None,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        channels = list(channels)
        if not channels:
            raise ValueError("EdgeConv needs at least one layer width")
        for c in channels:
            ops.check_positive_int(c, "channels")
        self.in_channels, self.out_channels = in_channels, channels[-1]
        self.channels = channels
        dd = {"device": device, "dtype": dtype}
        self.lin = nn.Linear(2 * in_channels, channels[0], bias=False, **dd)
        self.lins = nn.ModuleList(nn.Linear(a, b, bias=False, **dd)
                                  for a, b in zip(channels[:-1], channels[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm1d(c, **dd) for c in channels)
        self.negative_slope = negative_slope
        self.attn = attn.to(**dd) if attn is not None else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    def _act(self, h: Tensor, norm: nn.Module) -> Tensor:
        n, k, c = h.shape
        h = norm(h.reshape(n * k, c)).reshape(n, k, c)  # [N, K, C]
        return F.leaky_relu(h, self.negative_slope)

    def forward(self, x: Tensor, nbr_idx: Tensor) -> Tensor:
        c = self.in_channels
        w_a, w_b = self.lin.weight[:, :c], self.lin.weight[:, c:]  # [C1, C] each
        a = x @ (w_a - w_b).t()  # [N, C1]
        if self.lin.bias is not None:  # only after export's BatchNorm folding
            a = a + self.lin.bias
        bj = x @ w_b.t()  # [N, C1]
        h = a.unsqueeze(1) + bj[nbr_idx]  # [N, K, C1]
        h = self._act(h, self.norms[0])
        for lin, norm in zip(self.lins, self.norms[1:]):
            h = self._act(lin(h), norm)  # [N, K, C_l]
        return h.max(dim=1).values  # [N, C_out]

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.channels}"


class SpatialTransform(nn.Module):
    r"""DGCNN's spatial transform network: one learned 3x3 matrix per cloud.

    From the reference part-segmentation DGCNN (its ``Transform_Net``):

    .. math::
        \mathbf{g}_b = \max_{i \in b}\ \sigma\big(\mathrm{BN}(\mathbf{W}_1
        \max_{j \in \mathcal{N}(i)} h([\mathbf{p}_i, \mathbf{p}_j -
        \mathbf{p}_i]))\big), \qquad
        \mathbf{T}_b = \mathbf{I} + \mathrm{reshape}_{3 \times 3}\big(
        \mathbf{W}_4\, \mathrm{MLP}(\mathbf{g}_b)\big), \qquad
        \mathbf{p}'_i = \mathbf{p}_i \mathbf{T}_{b(i)}

    with :math:`h` an :class:`EdgeConv` 3 -> 64 -> 128, :math:`\mathbf{W}_1` 128 ->
    1024, the MLP 1024 -> 512 -> 256 (BN, LeakyReLU) and :math:`\mathbf{W}_4`
    256 -> 9 initialised to zero, so the transform starts as the identity. The
    pooling is per cloud, so clouds stay independent.

    Shapes:
        - **input:** pos :math:`(N, 3)`, nbr_idx :math:`(N, K)`, batch :math:`(N)`
        - **output:** transformed pos :math:`(N, 3)`, transforms :math:`(B, 3, 3)`

    Example:
        >>> t = SpatialTransform().eval()
        >>> pos = torch.randn(12, 3)
        >>> out, m = t(pos, ops.knn(pos, 4)[0], torch.zeros(12, dtype=torch.long), 1)
        >>> torch.equal(out, pos), m.shape
        (True, torch.Size([1, 3, 3]))
    """

    def __init__(self, negative_slope: float = 0.2,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        act = partial(nn.LeakyReLU, negative_slope)
        self.negative_slope = negative_slope
        self.edge = EdgeConv(3, [64, 128], negative_slope=negative_slope, **dd)
        self.point = nn.Sequential(nn.Linear(128, 1024, bias=False, **dd),
                                   nn.BatchNorm1d(1024, **dd), act())
        self.mlp = nn.Sequential(nn.Linear(1024, 512, bias=False, **dd),
                                 nn.BatchNorm1d(512, **dd), act(),
                                 nn.Linear(512, 256, bias=False, **dd),
                                 nn.BatchNorm1d(256, **dd), act())
        self.transform = nn.Linear(256, 9, **dd)
        self.reset_parameters()

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def reset_parameters(self) -> None:
        reset_children(self)
        nn.init.zeros_(self.transform.weight)
        nn.init.zeros_(self.transform.bias)  # T = I + 0 at the start

    def forward(self, pos: Tensor, nbr_idx: Tensor, batch: Tensor,
                batch_size: int) -> tuple[Tensor, Tensor]:
        h = self.point(self.edge(pos, nbr_idx))  # [N, 1024]
        g = ops.segment_max(h, batch, batch_size)  # [B, 1024]
        t = self.transform(self.mlp(g)).view(-1, 3, 3)  # [B, 3, 3]
        t = t + torch.eye(3, dtype=t.dtype, device=t.device)
        out = torch.bmm(pos.unsqueeze(1), t.to(pos.dtype)[batch]).squeeze(1)  # [N, 3]
        return out, t
