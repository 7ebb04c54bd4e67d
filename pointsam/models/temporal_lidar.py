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

__all__ = ["TemporalLidarSegmenter", "pointnet2_lite_temporal_lidarseg"]


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
        k: Neighbours per past scan. (default: 16)
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
                 quantile: float = 0.05) -> None:
        super().__init__()
        ops.check_positive_int(channels, "channels")
        if isinstance(num_past, bool) or not isinstance(num_past, int) or num_past < 0:
            raise ValueError(f"num_past must be an integer >= 0, got {num_past!r}")
        self.net, self.channels, self._num_past = net, channels, num_past
        self.cell, self.quantile = float(cell), float(quantile)
        self.embed = MLP([1, channels, channels])
        self.temporal: TemporalAttention | None = None
        if num_past:
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
                "masks and searches the past scans' neighbours inside forward, so "
                "it has no plan()/network() split; run it eagerly (pointsam eval, "
                "or model(batch) in Python)")

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, num_past={self.num_past}, "
                f"cell={self.cell}, quantile={self.quantile}")

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
            x0 = x0 + self.temporal(x0, rel0, b0, past_x=past_x, past_pos=past_pos,
                                    past_batch=past_batch)  # [N_0, C]
        return self.net(pos=rel0, x=x0, batch=b0)  # [N_0, classes]


@register_model
def pointnet2_lite_temporal_lidarseg(num_classes: int = 19, *, num_past: int = 2,
                                     channels: int = 32, num_heads: int = 4,
                                     k: int = 16, cell: float = 4.0,
                                     quantile: float = 0.05, **kwargs: Any
                                     ) -> TemporalLidarSegmenter:
    """``pointnet2_lite_semseg`` on the newest scan, fed a height embedding that
    attends to ``num_past`` previous scans (``num_past=0``: the single-scan twin).
    """
    net = create_model("pointnet2_lite_semseg", num_classes=num_classes,
                       in_channels=channels, **kwargs)
    return TemporalLidarSegmenter(net, channels=channels, num_past=num_past,
                                  num_heads=num_heads, k=k, cell=cell,
                                  quantile=quantile)
