r"""Frame-independent LiDAR segmenters: height above the local ground as the feature.

A LiDAR scan may come in the sensor frame (a KITTI ``.bin``: z = 0 at the
sensor, about 1.7 m above the road) or in a world frame (the SemanticKITTI
frames of Open3D-ML: y from -157 to -25 m, z from -6 to 3 m). The PointNet++
backbone only sees *relative* positions :math:`p_j - p_i` inside its
neighbourhoods, so it does not care where the cloud sits; the one absolute
quantity a road/sidewalk/building decision needs is the height above the
ground. :func:`height_above_ground` estimates it from the cloud alone:

.. math::
    g(c) = \min_{c' \in \mathcal{N}_{3\times 3}(c)} Q_q\{z_i : i \in c'\},
    \qquad h_i = z_i - g(c(i))

with :math:`c(i)` the ``cell`` x ``cell`` metre x-y cell of point i and
:math:`Q_q` the ``quantile`` of the heights in a cell (robust to a few points
below the road). :class:`GroundHeightSegmenter` feeds :math:`h` as the only
input channel (on a slope s the 3 x 3 minimum reads the ground up to about
:math:`3\,\text{cell}\,|s|` low: 0.4 m at 4 m cells on a 3.6% slope), with
``shape_radius`` also the four eigenvalue ratios of :func:`local_shape`; no
intensity and no absolute coordinate is used: the model reads a world-frame
frame and a sensor-frame scan the same way.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pointsam import ops

from ..nn.common import reset_children
from .base import WrapperModel
from .heads import unpack
from .registry import create_model, register_model

__all__ = ["height_above_ground", "local_shape", "GroundHeightSegmenter",
           "pointnet2_lite_lidarseg"]

_BIG = 1 << 31  # key = i * _BIG + j for cell indices (i, j) >= -1


def _cloud_ground_height(pos: Tensor, cell: float, quantile: float,
                         batch: Tensor | None = None, batch_size: int = 1
                         ) -> Tensor | None:
    """Height above ground [n] of one cloud, or of every cloud of ``batch`` at
    once (sorted, ``batch_size`` clouds); memory O(n).

    One cloud's cells are keyed ``i * 2^31 + j``; a batch packs (cloud, i, j)
    into one int64 with a margin of one cell on each side, so the 3 x 3
    neighbour keys of a cell never reach another cloud's cells and each cloud
    gets exactly what it gets alone. ``None`` when the packed key would not fit.
    """
    xy = pos[:, :2]  # [n, 2]
    if batch is None:
        ij = torch.floor((xy - xy.min(0).values) / cell).long() + 1  # [n, 2], >= 1
        step_i = _BIG
        key = ij[:, 0] * _BIG + ij[:, 1]  # [n]
    else:
        lo = xy.new_full((batch_size, 2), float("inf")).scatter_reduce(
            0, batch.view(-1, 1).expand(-1, 2), xy, "amin")  # [B, 2] per cloud
        ij = torch.floor((xy - lo[batch]) / cell).long() + 1  # [n, 2], >= 1
        ext_i, ext_j = (ij.amax(0) + 2).tolist()  # cells 0 .. ext - 1 per axis
        if batch_size * ext_i * ext_j >= (1 << 62):
            return None
        step_i = ext_j
        key = (batch * ext_i + ij[:, 0]) * ext_j + ij[:, 1]  # [n]
    cells, inv, counts = torch.unique(key, return_inverse=True, return_counts=True)
    z = pos[:, 2]
    order = torch.argsort(z, stable=True)
    order = order[torch.argsort(inv[order], stable=True)]  # by cell, then by z
    starts = torch.cumsum(counts, 0) - counts  # [M]
    pick = starts + torch.floor(quantile * (counts - 1).to(z.dtype)).long()  # [M]
    low = z[order[pick]]  # [M] quantile height of each occupied cell
    ground = low.clone()
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di == 0 and dj == 0:
                continue
            nk = cells + di * step_i + dj  # [M] neighbour keys
            at = torch.searchsorted(cells, nk).clamp(max=cells.numel() - 1)  # [M]
            hit = cells[at] == nk
            ground = torch.where(hit, torch.minimum(ground, low[at]), ground)
    return z - ground[inv]  # [n]


@torch.no_grad()
def height_above_ground(pos: Tensor, batch: Tensor | None = None, *,
                        cell: float = 4.0, quantile: float = 0.05) -> Tensor:
    r"""Height of each point above the local ground of its own cloud (metres).

    Args:
        pos: Coordinates, z up, metres.
        batch: Sorted cloud index per point (default: one cloud).
        cell: Edge of the x-y ground cells in metres. (default: 4.0)
        quantile: Height quantile taken as a cell's ground level. (default: 0.05)

    Shapes:
        - **input:** pos :math:`(N, 3)`, batch :math:`(N)` (optional)
        - **output:** :math:`(N)`

    Example:
        >>> g = torch.rand(2000, 3) * torch.tensor([40.0, 40.0, 0.0]) - 20
        >>> g[:, 2] = 0.01 * g[:, 0] + 5.0          # a tilted road at z ~ 5
        >>> box = torch.tensor([[1.0, 1.0, 6.5]])    # a point 1.5 m above it
        >>> h = height_above_ground(torch.cat([g, box]))
        >>> bool(h[:-1].abs().max() < 0.1), round(float(h[-1]), 1)
        (True, 1.5)
    """
    ops.check_pos(pos, "pos")
    if not cell > 0 or not 0 <= quantile <= 1:
        raise ValueError(f"need cell > 0 and 0 <= quantile <= 1, got {cell}, {quantile}")
    if pos.size(0) == 0:
        return pos.new_zeros(0)
    if batch is None:
        h = _cloud_ground_height(pos, cell, quantile)
        assert h is not None  # one cloud: keys always fit
        return h
    ops.check_batch(batch, pos.size(0), "batch")
    h = _cloud_ground_height(pos, cell, quantile, batch, int(batch[-1]) + 1)
    if h is not None:  # all clouds in one pass
        return h  # [N]
    counts = torch.bincount(batch).tolist()
    parts = [height_above_ground(p, cell=cell, quantile=quantile)
             for p in torch.split(pos, counts) if p.size(0)]
    return torch.cat(parts)  # [N]


@torch.no_grad()
def local_shape(pos: Tensor, batch: Tensor | None = None, *, radius: float = 0.5,
                k: int = 32) -> Tensor:
    r"""Eigenvalue shape features of each point's neighbourhood (Weinmann et al.
    2015; Hackel et al. 2016): four numbers in [0, 1] that do not depend on
    the scan's frame or its rotation about z, and, being ratios, not on the
    neighbourhood's scale. They do depend on how the sensor samples a surface:
    on a road a 0.5 m ball holds one or two laser rings and reads as lines.

    With :math:`\mathcal{N}_i` the at most ``k`` nearest points of i's cloud
    within ``radius`` (i included), :math:`C_i` their covariance,
    :math:`\lambda_1 \ge \lambda_2 \ge \lambda_3 \ge 0` its eigenvalues and
    :math:`\mathbf{n}_i` the eigenvector of :math:`\lambda_3` (the normal):

    .. math::
        \Big[\frac{\lambda_1 - \lambda_2}{\lambda_1},\;
        \frac{\lambda_2 - \lambda_3}{\lambda_1},\;
        \frac{\lambda_3}{\lambda_1},\; |n_{i,z}|\Big]

    (linearity, planarity, scattering, and the normal's vertical share: 1 on a
    road, 0 on a wall). A point with fewer than 3 neighbours gets zeros.

    Args:
        pos: Coordinates, z up, metres.
        batch: Sorted cloud index per point (default: one cloud).
        radius: Neighbourhood radius in metres. (default: 0.5)
        k: At most this many nearest neighbours. (default: 32)

    Shapes:
        - **input:** pos :math:`(N, 3)`, batch :math:`(N)` (optional)
        - **output:** :math:`(N, 4)`

    Example:
        >>> road = torch.cat([torch.rand(500, 2) * 4, torch.zeros(500, 1)], 1)
        >>> pole = torch.zeros(30, 3); pole[:, 2] = torch.linspace(0, 3, 30)
        >>> f, g = local_shape(road), local_shape(pole)
        >>> bool(f[:, 2].max() < 1e-6), bool((f[:, 3] > 0.99).all())  # flat, normal up
        (True, True)
        >>> bool((g[:, 0] > 0.99).all())  # a line: linearity 1
        True
    """
    ops.check_pos(pos, "pos")
    nbr, mask = ops.radius(pos, radius, batch, max_num_neighbors=k)  # [N, K] each
    w = mask.to(torch.float64).unsqueeze(-1)  # [N, K, 1]
    p = pos[nbr].to(torch.float64)  # [N, K, 3] gather of the neighbours
    p = p - pos.to(torch.float64).unsqueeze(1)  # [N, K, 3] relative to the point
    cnt = w.sum(1)  # [N, 1]
    mean = (p * w).sum(1) / cnt  # [N, 3]
    d = (p - mean.unsqueeze(1)) * w  # [N, K, 3]
    cov = d.transpose(1, 2) @ d / cnt.unsqueeze(-1)  # [N, 3, 3]
    lam, vec = torch.linalg.eigh(cov)  # [N, 3] ascending, [N, 3, 3]
    lam = lam.clamp(min=0.0)
    l1, l2, l3 = lam[:, 2], lam[:, 1], lam[:, 0]  # [N] each
    ok = (cnt.squeeze(1) >= 3) & (l1 > 0)  # [N]
    den = torch.where(ok, l1, torch.ones_like(l1))
    out = torch.stack([(l1 - l2) / den, (l2 - l3) / den, l3 / den,
                       vec[:, 2, 0].abs()], dim=1)  # [N, 4]
    return torch.where(ok.unsqueeze(1), out, torch.zeros_like(out)).to(pos.dtype)


class GroundHeightSegmenter(WrapperModel):
    r"""A segmenter fed with the height above the local ground (and, with
    ``shape_radius``, the local shape), nothing else.

    .. math::
        \text{logits} = f(p, [h(p), s(p)]),\qquad h = \text{height\_above\_ground}(p),
        \quad s = \text{local\_shape}(p) \text{ or nothing}

    where ``f`` is a segmenter taking one input channel (five with the shape);
    the cloud is centred on its mean first (only relative positions matter to
    ``f``; centring keeps float32 exact for world-frame coordinates).

    Args:
        net: A segmenter built with ``in_channels=1`` (5 with ``shape_radius``).
        cell: Ground cell edge in metres. (default: 4.0)
        quantile: Ground quantile per cell. (default: 0.05)
        shape_radius: Radius in metres of :func:`local_shape`'s neighbourhoods
            (at most 32 points), or ``None`` for the height alone. (default: ``None``)

    Shapes:
        - **input:** a ``Data``/``Batch`` with pos :math:`(N, 3)` (x is ignored)
        - **output:** :math:`(N, \text{classes})`

    Example:
        >>> m = pointnet2_lite_lidarseg(num_classes=3).eval()
        >>> m(pos=torch.randn(300, 3) * 5).shape
        torch.Size([300, 3])
    """

    task = "semseg"
    #: Why an end-to-end export (plan in the graph, ``num_points=N``) is refused.
    end_to_end_reason = ("its input feature, the height above the local ground, is a "
                     "per-cell quantile over a grid sized by the scan's extent "
                     "(data-dependent shapes), computed in Python; export the "
                     "network with the plan in Python (without --end-to-end), "
                     "which takes scans of any size")

    def __init__(self, net: nn.Module, *, cell: float = 4.0,
                 quantile: float = 0.05, shape_radius: float | None = None) -> None:
        super().__init__()
        self.net, self.cell, self.quantile = net, float(cell), float(quantile)
        self.shape_radius = None if shape_radius is None else float(shape_radius)

    def reset_parameters(self) -> None:
        reset_children(self)

    def extra_repr(self) -> str:
        r = self.shape_radius
        extra = "" if r is None else f", shape_radius={r}"
        return f"cell={self.cell}, quantile={self.quantile}{extra}"

    def features(self, pos: Tensor, batch: Tensor) -> Tensor:
        """The input channels [N, 1] (height above the local ground) or [N, 5]
        (and the four :func:`local_shape` ratios)."""
        h = height_above_ground(pos, batch, cell=self.cell, quantile=self.quantile)
        h = h.unsqueeze(1).to(pos.dtype)  # [N, 1]
        if self.shape_radius is None:
            return h
        s = local_shape(pos, batch, radius=self.shape_radius)  # [N, 4]
        return torch.cat([h, s], 1)  # [N, 5]

    def forward(self, data: Any = None, **tensors: Tensor) -> Tensor:
        _, pos, batch, _, b = unpack(data, **{k: v for k, v in tensors.items()
                                              if k != "x"})
        centre = ops.segment_mean(pos, batch, b)  # [B, 3]
        rel = pos - centre[batch]  # [N, 3]
        with ops.trusted():  # validated by unpack above: the net does not check again
            return self.net(pos=rel, x=self.features(pos, batch), batch=batch)

    def plan(self, pos: Tensor, batch: Tensor | None = None, *,
             batch_size: int | None = None) -> dict[str, Tensor]:
        r"""Everything that depends on the coordinates alone (DESIGN.md section 9):
        ``offset`` :math:`(N, 3)`, each point's cloud mean (the network centres
        on it), ``height`` :math:`(N, 1)`, the input feature (:math:`(N, 5)`
        with ``shape_radius``: every input channel), and the inner segmenter's
        plan on the centred cloud as ``net.<key>``. The ground height
        (per-cell quantiles) and the shape (a neighbour search) are computed
        here, in Python, so an exported network takes them as an input and the
        graph holds no search."""
        if batch is None:
            batch = torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
        b = ops.batch_size_of(batch, batch_size)
        offset = ops.segment_mean(pos, batch, b)[batch]  # [N, 3]
        inner = self.net.plan(pos - offset, batch, batch_size=b)
        return {"offset": offset, "height": self.features(pos, batch),
                **{f"net.{k}": v for k, v in inner.items()}}

    def network(self, x: Tensor | None, pos: Tensor, plan: dict[str, Tensor],
                category: Tensor | None = None) -> Tensor:
        """Logits from :meth:`plan` (exportable): the inner segmenter's network on
        the centred cloud with the height as its one channel; ``x`` is not read."""
        inner = {k[4:]: v for k, v in plan.items() if k.startswith("net.")}
        return self.net.network(plan["height"], pos - plan["offset"], inner)


@register_model
def pointnet2_lite_lidarseg(num_classes: int = 19, *, cell: float = 4.0,
                            quantile: float = 0.05, shape_radius: float | None = None,
                            **kwargs: Any) -> GroundHeightSegmenter:
    """``pointnet2_lite_semseg`` fed with height above ground (scans in any frame),
    and with ``shape_radius`` the four :func:`local_shape` features too."""
    net = create_model("pointnet2_lite_semseg", num_classes=num_classes,
                       in_channels=1 if shape_radius is None else 5, **kwargs)
    return GroundHeightSegmenter(net, cell=cell, quantile=quantile,
                                 shape_radius=shape_radius)
