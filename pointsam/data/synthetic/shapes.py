"""Parametric solids sampled on their surfaces (classification, 12 classes)."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from torch_geometric.data import Data

from .._common import make_data
from ..base import PointDataset
from ..io import sample_surface
from ._meshes import Mesh, check_common, merge, place, pose, random_rotation, unit

__all__ = ["SyntheticShapes", "SHAPE_CLASSES"]

#: Classes of :class:`SyntheticShapes`, in label order.
SHAPE_CLASSES = (
    "sphere",
    "cube",
    "cylinder",
    "cone",
    "torus",
    "tetrahedron",
    "octahedron",
    "pyramid",
    "arrow",
    "mobius",
    "plate",
    "hourglass",
)


@functools.cache
def _shape_mesh(name: str) -> Mesh:
    if name == "cube":
        return unit("box")
    if name == "cylinder":
        return place(unit("cylinder"), (0.5, 0.5, 1.6))
    if name == "cone":
        return place(unit("cone"), (0.7, 0.7, 1.5), (0, 0, -0.75))
    if name == "plate":
        return place(unit("box"), (2.0, 2.0, 0.15))
    if name == "hourglass":
        top = place(unit("cone"), (0.6, 0.6, -0.8), (0, 0, 0.8))
        top = (top[0], top[1][:, ::-1].copy())  # mirrored cone: flip the winding
        v, f, _ = merge([place(unit("cone"), (0.6, 0.6, 0.8), (0, 0, -0.8)), top])
        return v, f
    return unit(name)


class SyntheticShapes(PointDataset):
    r"""Parametric solids sampled on their surfaces, with normals (classification).

    The 12 classes (:data:`SHAPE_CLASSES`): sphere, cube, cylinder, cone, torus,
    tetrahedron, octahedron, pyramid, arrow, mobius, plate, hourglass. Sample
    ``i`` has class ``i % 12`` (balanced) and a random pose: uniform rotation
    (``rotation``), size :math:`s \sim U(0.5, 2)` times an anisotropic factor in
    :math:`U(1 - a, 1 + a)^3`, a shift in :math:`U(-1, 1)^3` and Gaussian noise of
    std ``noise * s`` along each coordinate.

    Each sample: ``pos`` [num_points, 3], ``x`` [num_points, 3] unit normals,
    ``y`` [1].

    Args:
        num_samples: Samples in the split.
        num_points: Points per sample.
        split: ``"train"``, ``"val"`` or ``"test"`` (different samples).
        seed: Dataset seed.
        rotation: ``"so3"``, ``"z"`` or ``"none"``.
        anisotropy: a in the size factor above.
        noise: Relative noise std.
        transform: Applied to each sample on access.

    Example:
        >>> ds = SyntheticShapes(num_samples=24, num_points=128)
        >>> d = ds[5]
        >>> d.pos.shape, d.x.shape, ds.classes[d.y.item()]
        (torch.Size([128, 3]), torch.Size([128, 3]), 'tetrahedron')
    """

    classes = SHAPE_CLASSES
    splits = ("train", "val", "test")

    def __init__(
        self,
        num_samples: int = 1200,
        num_points: int = 1024,
        split: str = "train",
        *,
        seed: int = 0,
        rotation: str = "so3",
        anisotropy: float = 0.2,
        noise: float = 0.005,
        transform: Callable[[Data], Data] | None = None,
    ) -> None:
        self._split = check_common(split, num_samples, num_points, rotation)
        self.num_samples, self.num_points, self.split = num_samples, num_points, split
        self.seed, self.rotation, self.anisotropy = seed, rotation, anisotropy
        self.noise, self.transform = noise, transform

    def __len__(self) -> int:
        return self.num_samples

    @property
    def num_classes(self) -> int:
        """Number of classes (12)."""
        return len(self.classes)

    def get(self, idx: int) -> Data:
        """Sample ``idx`` before ``transform``."""
        rng = np.random.default_rng([self.seed, self._split, idx])
        label = idx % len(self.classes)
        v, f = _shape_mesh(self.classes[label])
        pts, nrm = sample_surface(v, f, self.num_points, rng)
        size = rng.uniform(0.5, 2.0)
        aniso = rng.uniform(1 - self.anisotropy, 1 + self.anisotropy, size=3)
        lin = random_rotation(rng, self.rotation) @ np.diag(size * aniso)
        pts, nrm = pose(pts, nrm, lin)
        pts = (
            pts
            + rng.uniform(-1, 1, size=3)
            + rng.normal(scale=self.noise * size, size=pts.shape)
        )
        return make_data(pts, x=nrm, y=label)

    def __repr__(self) -> str:
        return f"SyntheticShapes({len(self)}, split={self.split!r})"
