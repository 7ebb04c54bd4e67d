r"""Random crops of a cloud: a sphere or a vertical cylinder around a random
point (re-exported by :mod:`pointsam.data.transforms`)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data

from .transforms import _Random, subset_points

__all__ = ["SphereCrop", "CylinderCrop"]


class _Crop(_Random):
    """The crops' shared constructor, centre and cut (the subclasses differ in
    the distance they measure)."""

    def __init__(
        self,
        radius: float | None = None,
        *,
        max_points: int | None = None,
        center: str = "random",
        seed: int | None = None,
    ) -> None:
        if radius is None and max_points is None:
            raise ValueError("give radius, max_points or both")
        if center not in ("random", "origin", "centroid"):
            raise ValueError(
                f"center must be 'random', 'origin' or 'centroid', got {center!r}"
            )
        super().__init__(seed)
        self.radius, self.max_points, self.center = radius, max_points, center

    def _centre(self, pos: Tensor) -> Tensor:
        if self.center == "origin":
            return pos.new_zeros(3)
        if self.center == "centroid":
            return pos.mean(0)
        return pos[int(torch.randint(pos.size(0), (1,), generator=self.generator))]

    def _crop(self, data: Data, d2: Tensor) -> Data:
        order = torch.argsort(d2, stable=True)  # nearest first
        if self.radius is not None:
            order = order[d2[order] <= self.radius**2]
        if self.max_points is not None:
            order = order[: self.max_points]
        return subset_points(data, order.sort().values)


class SphereCrop(_Crop):
    r"""Keep the points within ``radius`` of a centre (and/or its ``max_points``).

    Args:
        radius: Ball radius, or ``None`` for no radius limit.
        max_points: Keep at most this many, the nearest to the centre.
        center: ``"random"`` (a random point), ``"origin"`` (the sensor) or
            ``"centroid"``.
        seed: Own generator seed.
    """

    def __call__(self, data: Data) -> Data:
        c = self._centre(data.pos)
        return self._crop(data, ((data.pos - c) ** 2).sum(1))  # [N]

    def __repr__(self) -> str:
        return f"SphereCrop(radius={self.radius}, max_points={self.max_points})"


class CylinderCrop(_Crop):
    r"""Keep the points within horizontal distance ``radius`` of a centre (any z).

    :math:`(x_i - c_x)^2 + (y_i - c_y)^2 \le r^2`; arguments as :class:`SphereCrop`.
    """

    def __call__(self, data: Data) -> Data:
        c = self._centre(data.pos)
        return self._crop(data, ((data.pos[:, :2] - c[:2]) ** 2).sum(1))  # [N]

    def __repr__(self) -> str:
        return f"CylinderCrop(radius={self.radius}, max_points={self.max_points})"
