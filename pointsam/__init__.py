"""pointsam: attention for 3D point clouds.

Subpackages (imports flow one way: ``cli -> engine, viz -> models, data -> nn -> ops``):

- :mod:`pointsam.ops`: neighbour search and segment reductions on ragged batches.
- :mod:`pointsam.nn`: attention modules.
- :mod:`pointsam.models`: PointNet++ and DGCNN backbones, ``create_model``.
- :mod:`pointsam.data`: dataset readers, synthetic sets, transforms.
- :mod:`pointsam.engine`: training, evaluation, metrics, checkpoints.
- :mod:`pointsam.viz`: attention capture and Open3D rendering.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
