r"""Multi-scan LiDAR segmentation: the newest scan attends to the T scans before it.

A multi-scan sample (``SemanticKITTI`` or ``SyntheticLidar`` with
``num_scans > 1``) holds the newest scan and the scans before it, already
registered into the newest scan's sensor frame by the poses,

.. math::
    \mathbf{p}^{(0)} = \mathbf{P}_0^{-1} \mathbf{P}_\tau\, \mathbf{p}^{(\tau)}

(SemanticKITTI: :math:`\mathbf{P}_\tau = \mathbf{T}_{cam}^{-1}
\mathbf{C}_\tau \mathbf{T}_{cam}`, with :math:`\mathbf{C}_\tau` the camera
pose of scan :math:`\tau` in ``poses.txt`` and :math:`\mathbf{T}_{cam}` the
velodyne -> camera ``Tr`` of ``calib.txt``), so the ego-motion is removed: a
static surface lies at the same place in every scan and only moving objects
are displaced. ``frame`` [N] says which scan a point comes from (0 = newest).

:class:`TemporalLidarSegmenter` labels the newest scan's points only. Each
point gets the embedding :math:`\mathbf{x}_i = \phi(h_i)` of its height above
the local ground (:func:`~pointsam.models.lidar.height_above_ground`, per scan),
the newest scan's points attend with
:class:`~pointsam.nn.TemporalAttention` to their k nearest points in each of
the ``num_past`` previous scans (relative positions and a time encoding), and
the result, added residually, is the input of the single-scan segmenter:

.. math::
    \mathbf{x}'_i = \phi(h_i) + \mathrm{TA}\big(\phi(h_i), \mathbf{p}_i;
    \{\phi(h^{(\tau)}_j), \mathbf{p}^{(\tau)}_j\}_{\tau=1..T}\big),\qquad
    \text{logits} = f(\mathbf{p}^{(0)}, \mathbf{x}')

``placement="coarse"`` (the default) runs the temporal attention where a
point summarises metres, so that it can see a car slide along its own side
(at full resolution the 8 nearest past points of a point on a moving car's
flank lie on the same flank, displaced along it: nothing to see). Each scan
:math:`\tau = 0 \dots T` is voxelised (edge ``voxel``, the mean of each
voxel's points and of their :math:`\phi(h)`), the newest scan once more at the
coarse edge ``coarse_voxel``, which gives the centres :math:`\mathbf{c}_s`;
one shared set abstraction encodes every scan *at the same centres*,

.. math::
    \mathbf{e}^{(\tau)}_s = \max_{j:\ \|\mathbf{q}^{(\tau)}_j - \mathbf{c}_s\|
    \le r} g\big([\bar\phi^{(\tau)}_j,\ \mathbf{q}^{(\tau)}_j - \mathbf{c}_s]\big)

(0 for a ball with no point), so a parked car gives
:math:`\mathbf{e}^{(\tau)}_s \approx \mathbf{e}^{(0)}_s` and a driving car a
ball whose content has slid. The centres attend over the *changes*
:math:`\Delta^{(\tau)}_s = \mathbf{e}^{(\tau)}_s - \mathbf{e}^{(0)}_s` at their
``k`` nearest centres (keys and values are made of them, so a static scene
offers near-zero values), and the result, with the centre's own encoding, is
interpolated back to the newest scan's points (3 nearest centres, inverse
squared distance) and added:

.. math::
    \mathbf{m}_s = \mu\big([\mathbf{e}^{(0)}_s,\ \mathrm{TA}(\mathbf{e}^{(0)},
    \mathbf{c};\ \{\Delta^{(\tau)}, \mathbf{c}\}_{\tau=1..T})_s]\big),
    \qquad \mathbf{x}'_i = \phi(h_i) + \sum_{s \in \mathcal{N}_3(i)}
    w_{is}\, \mathbf{m}_s

(attending over the encodings themselves instead of their changes: moving-car
IoU 33.9 against 43.7, one seed, ``temporal_coarse.yaml`` with class weights)

``placement="full"`` is the first design, kept to compare: every point of the
newest scan attends to its k nearest points of each past scan.

With ``num_past=0`` the temporal branch is absent (:math:`\mathbf{x}' =
\phi(h)`): the single-scan twin, with the same parameters but those of
:math:`\mathrm{TA}`; it ignores every point with ``frame > 0``.

The model is eager-only: it selects the scans with boolean masks and its
temporal attention searches neighbours inside forward, so it has no
``plan()``/``network()`` split (DESIGN.md section 9) and ``pointsam export``
refuses it; ``pointsam predict`` reads one scan from one file, so it refuses
the temporal model too (evaluate it with ``pointsam eval`` on a multi-scan
dataset).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pointsam import ops
from pointsam.nn import TemporalAttention
from pointsam.nn.common import MLP, reset_children

from .base import WrapperModel
from .heads import unpack
from .lidar import height_above_ground
from .registry import create_model, register_model

__all__ = ["TemporalLidarSegmenter", "CoarseTemporal", "pointnet2_lite_temporal_lidarseg"]


class CoarseTemporal(nn.Module):
    r"""The coarse temporal module of :class:`TemporalLidarSegmenter`
    (``placement="coarse"``; the math is in the module docstring): voxelise
    every scan, encode each at the newest scan's coarse centres with one shared
    ball set abstraction :math:`g`, let the centres attend over the past
    encodings (:class:`~pointsam.nn.TemporalAttention`, ``attention``), compare
    with the centre's own encoding (:math:`\mu`) and interpolate back.

    Args:
        channels: Feature width :math:`C`.
        num_past: Previous scans T.
        num_heads, k: Of the temporal attention (k: centres per past scan).
        voxel, coarse_voxel, radius, ball_k: As :class:`TemporalLidarSegmenter`.

    Shapes:
        - **input:** x0 :math:`(N_0, C)`, rel0 :math:`(N_0, 3)`, b0
          :math:`(N_0)`, the number of clouds, and per past scan a tuple
          (features :math:`(N_\tau, C)`, positions :math:`(N_\tau, 3)`, cloud
          ids :math:`(N_\tau)`) in the newest scan's frame
        - **output:** :math:`(N_0, C)`
    """

    def __init__(self, channels: int, num_past: int, *, num_heads: int, k: int,
                 voxel: float, coarse_voxel: float, radius: float,
                 ball_k: int) -> None:
        super().__init__()
        self.voxel, self.coarse_voxel = float(voxel), float(coarse_voxel)
        self.radius, self.ball_k = float(radius), ball_k
        self.encode = MLP([channels + 3, channels, channels],
                          norm_layer=nn.BatchNorm1d, plain_last=False)  # g
        self.attention = TemporalAttention(channels, num_heads=num_heads, k=k,
                                           num_frames=num_past)
        self.compare = MLP([2 * channels, channels, channels],
                           norm_layer=nn.BatchNorm1d)  # mu
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    def extra_repr(self) -> str:
        return (f"voxel={self.voxel}, coarse_voxel={self.coarse_voxel}, "
                f"radius={self.radius}, ball_k={self.ball_k}")

    def _voxels(self, pos: Tensor, x: Tensor, batch: Tensor, b: int
                ) -> tuple[Tensor, Tensor, Tensor]:
        """One scan voxelised at ``voxel``: mean positions [M, 3], mean features
        [M, C], cloud ids [M]."""
        g = ops.grid_subsample(pos, self.voxel, batch, batch_size=b)
        m = g.pos.size(0)
        return g.pos, ops.segment_mean(x, g.cluster, m), batch[g.index]  # [M, *]

    def _ball_encode(self, centre: Tensor, cbatch: Tensor, q: Tensor, f: Tensor,
                     qbatch: Tensor, b: int) -> Tensor:
        r""":math:`\mathbf{e}_s` [S, C] of one voxelised scan (q [M, 3], f [M, C])
        at the centres [S, 3] (0 where the ball holds no point)."""
        nbr, mask = ops.radius(q, self.radius, qbatch, query=centre,
                               query_batch=cbatch, max_num_neighbors=self.ball_k,
                               batch_size=b)  # [S, K] each
        h = torch.cat([f[nbr], q[nbr] - centre.unsqueeze(1)], dim=-1)  # [S, K, C+3]
        h = self.encode(h).masked_fill(~mask.unsqueeze(-1), float("-inf"))
        e = h.amax(dim=1)  # [S, C]
        return torch.where(mask.any(1, keepdim=True), e, torch.zeros_like(e))

    def forward(self, x0: Tensor, rel0: Tensor, b0: Tensor, b: int,
                past: list[tuple[Tensor, Tensor, Tensor]]) -> Tensor:
        r"""The coarse temporal term [N_0, C] added to :math:`\phi(h)` of the
        newest scan (module docstring); ``past`` holds (features, positions,
        cloud ids) of each earlier scan."""
        q0, f0, qb0 = self._voxels(rel0, x0, b0, b)
        g = ops.grid_subsample(q0, self.coarse_voxel, qb0, batch_size=b)
        centre, cb = g.pos, qb0[g.index]  # [S, 3], [S]
        e0 = self._ball_encode(centre, cb, q0, f0, qb0, b)  # [S, C]
        enc = []
        for xt, pt, bt in past:
            qt, ft, qbt = self._voxels(pt, xt, bt, b)
            enc.append(self._ball_encode(centre, cb, qt, ft, qbt, b))  # [S, C]
        t = len(enc)
        enc = [e - e0 for e in enc]  # [S, C] each: what changed since scan tau
        ta = self.attention(e0, centre, cb, past_x=enc, past_pos=[centre] * t,
                           past_batch=[cb] * t)  # [S, C]
        m = self.compare(torch.cat([e0, ta], dim=-1))  # [S, C]
        idx, mask = ops.knn(centre, 3, cb, query=rel0, query_batch=b0,
                            batch_size=b)  # [N_0, 3] each
        d2 = ((rel0.unsqueeze(1) - centre[idx]) ** 2).sum(-1)  # [N_0, 3]
        w = (1.0 / (d2 + 1e-8)).masked_fill(~mask, 0.0)
        w = w / w.sum(1, keepdim=True)  # [N_0, 3]
        return (w.unsqueeze(-1) * m[idx]).sum(1)  # [N_0, C]


class TemporalLidarSegmenter(WrapperModel):
    r"""Segments the newest scan of a multi-scan sample, attending to past scans.

    See the module docstring for the math. The past scans must already be in
    the newest scan's frame (the datasets do this with the poses).

    Args:
        net: A segmenter built with ``in_channels=channels``.
        channels: Width :math:`C` of the height embedding :math:`\phi` and of
            the temporal attention. (default: 32)
        num_past: Previous scans T attended to; 0 is the single-scan twin.
            (default: 2)
        num_heads: Heads of the temporal attention. (default: 4)
        k: Neighbours per past scan (points, or centres with ``"coarse"``).
            (default: 16)
        placement: ``"coarse"`` (attention between voxel-centre encodings, see
            the module docstring) or ``"full"`` (every point, its k nearest
            past points). (default: ``"coarse"``)
        voxel: Voxel edge of every scan before the coarse encoding, metres.
            (default: 0.4)
        coarse_voxel: Voxel edge of the centres, metres. (default: 1.0)
        radius: Ball radius of the coarse encoding, metres. (default: 2.5)
        ball_k: Points per ball (the nearest). (default: 48)
        cell: Ground cell edge in metres (height above ground). (default: 4.0)
        quantile: Ground quantile per cell. (default: 0.05)

    Shapes:
        - **input:** a ``Data``/``Batch`` with pos :math:`(N, 3)`, batch
          :math:`(N)` and ``frame`` :math:`(N)` int (0 = newest scan; absent:
          every point is of the newest scan); x is ignored
        - **output:** :math:`(N_0, \text{classes})` for the :math:`N_0` points
          with ``frame == 0``, in their order in the input

    Example:
        >>> from torch_geometric.data import Data
        >>> m = pointnet2_lite_temporal_lidarseg(num_classes=4, num_past=2).eval()
        >>> d = Data(pos=torch.randn(900, 3) * 5,
        ...          frame=torch.arange(3).repeat_interleave(300))
        >>> m(d).shape
        torch.Size([300, 4])
    """

    task = "semseg"

    def __init__(self, net: nn.Module, *, channels: int = 32, num_past: int = 2,
                 num_heads: int = 4, k: int = 16, cell: float = 4.0,
                 quantile: float = 0.05, placement: str = "coarse",
                 voxel: float = 0.4, coarse_voxel: float = 1.0,
                 radius: float = 2.5, ball_k: int = 48) -> None:
        super().__init__()
        ops.check_positive_int(channels, "channels")
        ops.check_positive_int(ball_k, "ball_k")
        if isinstance(num_past, bool) or not isinstance(num_past, int) or num_past < 0:
            raise ValueError(f"num_past must be an integer >= 0, got {num_past!r}")
        if placement not in ("coarse", "full"):
            raise ValueError(f"placement must be 'coarse' or 'full', got {placement!r}")
        for name, v in (("voxel", voxel), ("coarse_voxel", coarse_voxel),
                        ("radius", radius)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name} must be a positive number of metres, "
                                 f"got {v!r}")
        self.net, self.channels, self._num_past = net, channels, num_past
        self.cell, self.quantile = float(cell), float(quantile)
        self.placement, self.voxel = placement, float(voxel)
        self.coarse_voxel, self.radius, self.ball_k = (float(coarse_voxel),
                                                       float(radius), ball_k)
        self.embed = MLP([1, channels, channels])
        # the temporal module: everything the single-scan twin lacks
        self.temporal: TemporalAttention | CoarseTemporal | None = None
        if num_past and placement == "coarse":
            self.temporal = CoarseTemporal(
                channels, num_past, num_heads=num_heads, k=k, voxel=voxel,
                coarse_voxel=coarse_voxel, radius=radius, ball_k=ball_k)
        elif num_past:
            self.temporal = TemporalAttention(channels, num_heads=num_heads, k=k,
                                              num_frames=num_past)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    @property
    def num_past(self) -> int:
        return self._num_past

    @property
    def export_blocker(self) -> str | None:
        return ("TemporalLidarSegmenter (and its single-scan twin, num_past=0) "
                "cannot be exported: it picks its scans from `frame` with boolean "
                "masks, and voxelises every scan and searches its balls and the "
                "past scans' neighbours inside forward (all of it from positions "
                "alone, so a plan could hold it, but none is written yet): it has "
                "no plan()/network() split; run it eagerly (pointsam eval, or "
                "model(batch) in Python)")

    def extra_repr(self) -> str:
        coarse = (f", voxel={self.voxel}, coarse_voxel={self.coarse_voxel}, "
                  f"radius={self.radius}, ball_k={self.ball_k}"
                  if self.placement == "coarse" else "")
        return (f"channels={self.channels}, num_past={self.num_past}, "
                f"placement={self.placement!r}, cell={self.cell}, "
                f"quantile={self.quantile}{coarse}")

    def _features(self, pos: Tensor, batch: Tensor) -> Tensor:
        """:math:`\\phi(h)` [n, C] of one scan's points (height per cloud)."""
        h = height_above_ground(pos, batch, cell=self.cell, quantile=self.quantile)
        return self.embed(h.unsqueeze(1).to(pos.dtype))  # [n, C]

    def forward(self, data: Any = None, *, frame: Tensor | None = None,
                **tensors: Tensor) -> Tensor:
        if data is not None:
            if frame is not None:
                raise ValueError("give either a Data/Batch or frame=..., not both")
            frame = getattr(data, "frame", None)
        _, pos, batch, _, b = unpack(data, **{k: v for k, v in tensors.items()
                                              if k != "x"})
        if frame is None:
            frame = torch.zeros_like(batch)  # [N] one scan
        frame = frame.view(-1)
        if frame.numel() != pos.size(0) or frame.dtype.is_floating_point \
                or frame.dtype == torch.bool:
            raise ValueError(f"frame must be an integer tensor [N={pos.size(0)}] "
                             f"(0 = newest scan), got {frame.dtype} "
                             f"{tuple(frame.shape)}")
        cur = frame == 0  # [N]
        if not bool(cur.any()):
            raise ValueError("no point has frame == 0: the newest scan is empty")
        if self.temporal is not None and int(frame.max()) < self.num_past:
            raise ValueError(
                f"this model attends to num_past={self.num_past} previous scans "
                f"(frame 1..{self.num_past}) but the input has frames "
                f"0..{int(frame.max())}: load num_scans={self.num_past + 1} or more "
                "(SemanticKITTI/SyntheticLidar num_scans)")
        p0, b0 = pos[cur], batch[cur]  # [N_0, 3], [N_0]
        centre = ops.segment_mean(p0, b0, b)  # [B, 3] of the newest scan
        x0 = self._features(p0, b0)  # [N_0, C]
        rel0 = p0 - centre[b0]  # [N_0, 3]
        if self.temporal is not None:
            past_x, past_pos, past_batch = [], [], []
            for tau in range(1, self.num_past + 1):
                m = frame == tau  # [N]
                pt, bt = pos[m], batch[m]  # [N_tau, 3], [N_tau]
                past_x.append(self._features(pt, bt))  # [N_tau, C]
                past_pos.append(pt - centre[bt])  # [N_tau, 3]
                past_batch.append(bt)
            if isinstance(self.temporal, CoarseTemporal):
                x0 = x0 + self.temporal(x0, rel0, b0, b, list(zip(
                    past_x, past_pos, past_batch)))  # [N_0, C]
            else:
                x0 = x0 + self.temporal(x0, rel0, b0, past_x=past_x,
                                        past_pos=past_pos,
                                        past_batch=past_batch)  # [N_0, C]
        return self.net(pos=rel0, x=x0, batch=b0)  # [N_0, classes]


@register_model
def pointnet2_lite_temporal_lidarseg(num_classes: int = 19, *, num_past: int = 2,
                                     channels: int = 32, num_heads: int = 4,
                                     k: int = 16, cell: float = 4.0,
                                     quantile: float = 0.05, placement: str = "coarse",
                                     voxel: float = 0.4, coarse_voxel: float = 1.0,
                                     radius: float = 2.5, ball_k: int = 48,
                                     **kwargs: Any) -> TemporalLidarSegmenter:
    """``pointnet2_lite_semseg`` on the newest scan, fed a height embedding that
    attends to ``num_past`` previous scans (``num_past=0``: the single-scan twin;
    ``placement``: where the temporal attention runs, see
    :class:`TemporalLidarSegmenter`).
    """
    net = create_model("pointnet2_lite_semseg", num_classes=num_classes,
                       in_channels=channels, **kwargs)
    return TemporalLidarSegmenter(net, channels=channels, num_past=num_past,
                                  num_heads=num_heads, k=k, cell=cell,
                                  quantile=quantile, placement=placement,
                                  voxel=voxel, coarse_voxel=coarse_voxel,
                                  radius=radius, ball_k=ball_k)
