r"""Synthetic datasets that need no files: shapes, part-labelled objects, LiDAR scenes.

All three are deterministic functions of ``(seed, split, index)``: sample ``i`` is
generated on access from ``numpy.random.default_rng([seed, split, i])``, so any
DataLoader worker, order or process gives the same sample.

One module per dataset: :mod:`~pointsam.data.synthetic.shapes`,
:mod:`~pointsam.data.synthetic.parts`, :mod:`~pointsam.data.synthetic.lidar`;
``_meshes`` holds the mesh primitives they share.
"""

from .lidar import LIDAR_CLASSES, MOVING_CLASSES, SyntheticLidar
from .parts import PART_CLASSES, SyntheticParts
from .shapes import SHAPE_CLASSES, SyntheticShapes

__all__ = [
    "SyntheticShapes",
    "SyntheticParts",
    "SyntheticLidar",
    "SHAPE_CLASSES",
    "PART_CLASSES",
    "LIDAR_CLASSES",
    "MOVING_CLASSES",
]
