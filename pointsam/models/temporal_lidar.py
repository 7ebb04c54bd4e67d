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

The forward is a geometry plan and a network (DESIGN.md section 9): which
rows belong to which scan, the heights above ground, every voxel grouping,
ball, neighbour table and interpolation weight depend on positions, clouds and
``frame`` alone and are :meth:`TemporalLidarSegmenter.plan`; the network reads
them with gathers, one float64 prefix sum per voxel mean
(:func:`~pointsam.ops.sorted_segment_mean`) and dense tensor ops, so it
exports (ONNX, ``.pt2``: ``plan(pos, batch, frame=frame)`` gives the inputs).
``pointsam predict`` reads one scan from one file, so it refuses the temporal
model (evaluate it with ``pointsam eval`` on a multi-scan dataset, or feed an
export the plan of a registered sequence).
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
        - **input:** (forward, the network) per scan :math:`\tau = 0 \dots T`
          features :math:`(N_\tau, C)` and positions :math:`(N_\tau, 3)` in
          the newest scan's frame, and the :meth:`plan` of those positions
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

    def plan(self, scans: list[tuple[Tensor, Tensor]], b: int) -> dict[str, Tensor]:
        r"""Every index and weight of the module from positions alone.

        ``scans`` holds (positions :math:`(N_\tau, 3)` centred on the newest
        scan, cloud ids :math:`(N_\tau)`) of scans :math:`\tau = 0 \dots T`.
        Keys: ``vox<tau>.order`` :math:`(N_\tau)` / ``vox<tau>.bounds``
        :math:`(M_\tau + 1)`, each scan's voxels (:func:`~pointsam.ops.segment_bounds`);
        ``coarse.order`` / ``coarse.bounds``, the newest scan's voxels grouped
        into the centres :math:`(S)`; ``ball<tau>.index`` / ``ball<tau>.mask``
        :math:`(S, \text{ball\_k})`, the voxels of scan :math:`\tau` in each
        centre's ball; ``attn.index`` / ``attn.mask`` :math:`(S, T k)`, the k
        nearest centres in each past scan's copy; ``interp.index`` /
        ``interp.weight`` :math:`(N_0, 3)`, the 3 nearest centres of each
        point and their normalised inverse squared distances."""
        out: dict[str, Tensor] = {}
        vox = []
        for tau, (p, pb) in enumerate(scans):
            g = ops.grid_subsample(p, self.voxel, pb, batch_size=b)
            order, bounds = ops.segment_bounds(g.cluster, g.pos.size(0))
            out[f"vox{tau}.order"], out[f"vox{tau}.bounds"] = order, bounds
            q = ops.sorted_segment_mean(p, order, bounds)  # [M, 3], as the network
            vox.append((q, pb[g.index]))  # [M, 3], [M]
        q0, qb0 = vox[0]
        g = ops.grid_subsample(q0, self.coarse_voxel, qb0, batch_size=b)
        order, bounds = ops.segment_bounds(g.cluster, g.pos.size(0))
        out["coarse.order"], out["coarse.bounds"] = order, bounds
        centre = ops.sorted_segment_mean(q0, order, bounds)  # [S, 3]
        cb = qb0[g.index]  # [S]
        for tau, (q, qb) in enumerate(vox):
            out[f"ball{tau}.index"], out[f"ball{tau}.mask"] = ops.radius(
                q, self.radius, qb, query=centre, query_batch=cb,
                max_num_neighbors=self.ball_k, batch_size=b)  # [S, K] each
        t, s = len(scans) - 1, centre.size(0)
        idx, mask = ops.knn(centre, self.attention.k, cb, query=centre,
                            query_batch=cb, batch_size=b)  # [S, k] each
        out["attn.index"] = torch.cat([idx + tau * s for tau in range(t)], 1)  # [S, T k]
        out["attn.mask"] = mask.repeat(1, t)  # [S, T k]
        rel0, b0 = scans[0]
        idx, mask = ops.knn(centre, 3, cb, query=rel0, query_batch=b0,
                            batch_size=b)  # [N_0, 3] each
        d2 = ((rel0.unsqueeze(1) - centre[idx]) ** 2).sum(-1)  # [N_0, 3]
        w = (1.0 / (d2 + 1e-8)).masked_fill(~mask, 0.0)
        out["interp.index"], out["interp.weight"] = idx, w / w.sum(1, keepdim=True)
        return out

    def _ball_encode(self, centre: Tensor, q: Tensor, f: Tensor, nbr: Tensor,
                     mask: Tensor) -> Tensor:
        r""":math:`\mathbf{e}_s` [S, C] of one voxelised scan (q [M, 3], f [M, C])
        at the centres [S, 3] (0 where the ball holds no point)."""
        h = torch.cat([f[nbr], q[nbr] - centre.unsqueeze(1)], dim=-1)  # [S, K, C+3]
        h = self.encode(h).masked_fill(~mask.unsqueeze(-1), float("-inf"))
        e = h.amax(dim=1)  # [S, C]
        return torch.where(mask.any(1, keepdim=True), e, torch.zeros_like(e))

    def forward(self, feats: list[Tensor], rel: list[Tensor],
                plan: dict[str, Tensor]) -> Tensor:
        r"""The coarse temporal term [N_0, C] added to :math:`\phi(h)` of the
        newest scan (module docstring), from :meth:`plan` (plain tensor ops:
        what exports): ``feats[tau]`` :math:`(N_\tau, C)` and ``rel[tau]``
        :math:`(N_\tau, 3)` of scans :math:`\tau = 0 \dots T`."""
        enc = []
        centre = rel[0].new_zeros(0, 3)
        for tau, (f, p) in enumerate(zip(feats, rel)):
            order, bounds = plan[f"vox{tau}.order"], plan[f"vox{tau}.bounds"]
            q = ops.sorted_segment_mean(p, order, bounds)  # [M, 3] voxel means
            fm = ops.sorted_segment_mean(f, order, bounds)  # [M, C]
            if tau == 0:
                centre = ops.sorted_segment_mean(q, plan["coarse.order"],
                                                 plan["coarse.bounds"])  # [S, 3]
            enc.append(self._ball_encode(centre, q, fm, plan[f"ball{tau}.index"],
                                         plan[f"ball{tau}.mask"]))  # [S, C]
        e0, t = enc[0], len(enc) - 1
        delta = [e - e0 for e in enc[1:]]  # [S, C] each: what changed since scan tau
        ta = self.attention(e0, centre, past_x=delta, past_pos=[centre] * t,
                            past_index=plan["attn.index"],
                            past_mask=plan["attn.mask"])  # [S, C]
        m = self.compare(torch.cat([e0, ta], dim=-1))  # [S, C]
        idx, w = plan["interp.index"], plan["interp.weight"]  # [N_0, 3] each
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
    reads_frame = True

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

    def extra_repr(self) -> str:
        coarse = (f", voxel={self.voxel}, coarse_voxel={self.coarse_voxel}, "
                  f"radius={self.radius}, ball_k={self.ball_k}"
                  if self.placement == "coarse" else "")
        return (f"channels={self.channels}, num_past={self.num_past}, "
                f"placement={self.placement!r}, cell={self.cell}, "
                f"quantile={self.quantile}{coarse}")

    def _frame(self, frame: Tensor | None, batch: Tensor) -> Tensor:
        """``frame`` [N] checked (0 = newest scan; ``None``: one scan)."""
        if frame is None:
            return torch.zeros_like(batch)  # [N] one scan
        frame = frame.view(-1)
        if frame.numel() != batch.numel() or frame.dtype.is_floating_point \
                or frame.dtype == torch.bool:
            raise ValueError(f"frame must be an integer tensor [N={batch.numel()}] "
                             f"(0 = newest scan), got {frame.dtype} "
                             f"{tuple(frame.shape)}")
        if not bool((frame == 0).any()):
            raise ValueError("no point has frame == 0: the newest scan is empty")
        if self.temporal is not None and int(frame.max()) < self.num_past:
            raise ValueError(
                f"this model attends to num_past={self.num_past} previous scans "
                f"(frame 1..{self.num_past}) but the input has frames "
                f"0..{int(frame.max())}: load num_scans={self.num_past + 1} or more "
                "(SemanticKITTI/SyntheticLidar num_scans)")
        return frame

    def forward(self, data: Any = None, *, frame: Tensor | None = None,
                **tensors: Tensor) -> Tensor:
        if data is not None:
            if frame is not None:
                raise ValueError("give either a Data/Batch or frame=..., not both")
            frame = getattr(data, "frame", None)
        _, pos, batch, _, b = unpack(data, **{k: v for k, v in tensors.items()
                                              if k != "x"})
        with torch.no_grad():
            plan = self.plan(pos, batch, batch_size=b, frame=frame)
        return self.network(None, pos, plan)

    def plan(self, pos: Tensor, batch: Tensor | None = None, *,
             batch_size: int | None = None, frame: Tensor | None = None
             ) -> dict[str, Tensor]:
        r"""Everything that depends on positions, clouds and scans alone
        (DESIGN.md section 9), so that the network exports.

        Per scan :math:`\tau = 0 \dots T` (T = ``num_past``; later scans are
        not read): ``scan<tau>.index`` :math:`(N_\tau)`, its points' rows in
        ``pos`` (in input order), ``scan<tau>.offset`` :math:`(N_\tau, 3)`, the
        newest scan's cloud mean (every scan is centred on it),
        ``scan<tau>.height`` :math:`(N_\tau, 1)`, the height above the local
        ground of the scan itself; the temporal module's tables as
        ``temporal.<key>`` (:meth:`CoarseTemporal.plan`, or ``index``/``mask``
        :math:`(N_0, T k)` of the full placement's k nearest past points); the
        inner segmenter's plan on the newest scan as ``net.<key>``.
        ``frame`` :math:`(N)` int says which scan each point is of (0 =
        newest; ``None``: every point)."""
        if batch is None:
            batch = torch.zeros(pos.size(0), dtype=torch.long, device=pos.device)
        b = ops.batch_size_of(batch, batch_size)
        frame = self._frame(frame, batch)
        out: dict[str, Tensor] = {}
        scans: list[tuple[Tensor, Tensor]] = []  # (centred positions, cloud ids)
        centre = pos.new_zeros(b, 3)
        for tau in range(self.num_past + 1 if self.temporal is not None else 1):
            idx = (frame == tau).nonzero().squeeze(1)  # [N_tau]
            pt, bt = pos[idx], batch[idx]  # [N_tau, 3], [N_tau]
            if tau == 0:
                centre = ops.segment_mean(pt, bt, b)  # [B, 3] of the newest scan
            h = height_above_ground(pt, bt, cell=self.cell, quantile=self.quantile)
            out[f"scan{tau}.index"], out[f"scan{tau}.offset"] = idx, centre[bt]
            out[f"scan{tau}.height"] = h.unsqueeze(1).to(pos.dtype)  # [N_tau, 1]
            scans.append((pt - centre[bt], bt))
        if isinstance(self.temporal, CoarseTemporal):
            sub = self.temporal.plan(scans, b)
        elif self.temporal is not None:
            idx_t, mask_t = self.temporal.search_past(
                scans[0][0], scans[0][1], [p for p, _ in scans[1:]],
                [q for _, q in scans[1:]])  # [N_0, T k] each
            sub = {"index": idx_t, "mask": mask_t}
        else:
            sub = {}
        out.update({f"temporal.{k}": v for k, v in sub.items()})
        inner = self.net.plan(scans[0][0], scans[0][1], batch_size=b)
        out.update({f"net.{k}": v for k, v in inner.items()})
        return out

    def network(self, x: Tensor | None, pos: Tensor, plan: dict[str, Tensor],
                category: Tensor | None = None) -> Tensor:
        """Logits of the newest scan's points from :meth:`plan` (plain tensor
        ops: what exports); ``x`` is not read. Its modules do not check their
        inputs again (:func:`~pointsam.ops.trusted`): the plan is built from
        checked positions."""
        with ops.trusted():
            return self._network(pos, plan)

    def _network(self, pos: Tensor, plan: dict[str, Tensor]) -> Tensor:
        rel, feats = [], []
        for tau in range(self.num_past + 1 if self.temporal is not None else 1):
            r = pos[plan[f"scan{tau}.index"]] - plan[f"scan{tau}.offset"]  # [N_tau, 3]
            rel.append(r)
            feats.append(self.embed(plan[f"scan{tau}.height"]))  # [N_tau, C]
        x0 = feats[0]
        sub = {k[9:]: v for k, v in plan.items() if k.startswith("temporal.")}
        if isinstance(self.temporal, CoarseTemporal):
            x0 = x0 + self.temporal(feats, rel, sub)  # [N_0, C]
        elif self.temporal is not None:
            x0 = x0 + self.temporal(x0, rel[0], past_x=feats[1:], past_pos=rel[1:],
                                    past_index=sub["index"],
                                    past_mask=sub["mask"])  # [N_0, C]
        inner = {k[4:]: v for k, v in plan.items() if k.startswith("net.")}
        return self.net.network(x0, rel[0], inner)  # [N_0, classes]


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
