"""pointsam: attention for 3D point clouds.

Subpackages (imports flow one way: ``cli -> export, engine, viz -> models, data ->
nn -> ops``):

- :mod:`pointsam.ops`: neighbour search (kNN, FPS, radius, grids) with several
  backends, segment reductions on ragged batches, input validation.
- :mod:`pointsam.nn`: the attention modules (gates, local, global, axial, LAFF,
  multi-head, temporal, cross-modal), the residual block, the module protocol.
- :mod:`pointsam.models`: the model contract (:class:`~pointsam.models.PointModel`),
  PointNet++ and DGCNN backbones, heads, LiDAR segmenters, ``create_model``,
  shipped trained models (``load_pretrained``).
- :mod:`pointsam.data`: readers of the published formats, labelled LiDAR
  frames and box-labelled scans, synthetic sets, transforms.
- :mod:`pointsam.engine`: the one trainer, configs, tasks, metrics, checkpoints,
  the prediction path, sweeps, distributed training.
- :mod:`pointsam.export`: ONNX / ``torch.export`` of plan + network, ONNX Runtime.
- :mod:`pointsam.viz`: attention capture, figures, Open3D rendering, PLY, the
  HTML viewer.
- :mod:`pointsam.cli`: the ``pointsam`` command, one module per sub-command.

Shipped weights and their model cards live in ``pointsam/pretrained/``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
