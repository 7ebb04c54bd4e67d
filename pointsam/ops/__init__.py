r"""Neighbourhoods and reductions on ragged point batches.

One API with several backends (DESIGN.md section 7): :func:`knn`, :func:`radius`,
:func:`fps`, :func:`grid_subsample`, the neighbour rules :func:`dilate` and
:func:`feature_knn`, the segment reductions and the
``batch``/``ptr``/dense helpers. Nothing here holds parameters.

Inside :func:`fixed_size` (B clouds of exactly n points) :func:`fps`,
:func:`knn` and :func:`radius` take dense pure-torch paths that trace into an
ONNX / ``torch.export`` graph (:mod:`pointsam.ops.fixed`): the end-to-end
exports of :mod:`pointsam.export`.
"""

from ._validate import (
    check_batch,
    check_features,
    check_pos,
    check_positive_int,
    is_trusted,
    trusted,
    validate_always,
)
from .batch import (
    batch_size_of,
    batch_to_ptr,
    default_batch,
    from_dense,
    ptr_to_batch,
    to_dense,
)
from .dilation import dilate, hdc_rates
from .feature_knn import feature_knn
from .fixed import (
    count_per_index,
    fixed_batch_size,
    fixed_layout,
    fixed_size,
    fps_dense,
    knn_dense,
)
from .fps import available_fps_backends, canonical_start, fps, fps_backends
from .grid import GridSample, grid_subsample
from .knn import available_knn_backends, knn, knn_backends, radius
from .segment import (
    segment_bounds,
    segment_max,
    segment_mean,
    segment_softmax,
    segment_sum,
    sorted_segment_mean,
)

__all__ = [
    "knn", "radius", "fps", "grid_subsample", "GridSample", "hdc_rates", "dilate",
    "feature_knn", "fixed_size", "fixed_batch_size", "fps_dense", "knn_dense",
    "fixed_layout", "count_per_index",
    "knn_backends", "fps_backends", "available_knn_backends", "available_fps_backends",
    "canonical_start", "segment_sum", "segment_mean", "segment_max", "segment_softmax",
    "segment_bounds", "sorted_segment_mean",
    "default_batch", "batch_to_ptr", "ptr_to_batch", "batch_size_of", "to_dense", "from_dense",
    "check_pos", "check_batch", "check_features", "check_positive_int",
    "trusted", "is_trusted", "validate_always",
]
