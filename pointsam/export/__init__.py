r"""Deployment: export a model's network to ONNX or ``torch.export``, run it in
ONNX Runtime with the geometry plan from :mod:`pointsam.ops` (DESIGN.md section 9).

A model is ``network(x, pos, plan(pos, batch))``: the plan (FPS samples, kNN and
ball tables, interpolation weights, the tables of attention modules that build
their own neighbourhoods) is computed in Python by :mod:`pointsam.ops` with any
backend; the network is plain tensor ops, and that is what is exported, with a
dynamic number of points and of clouds. The exported file carries the model's
registry name and arguments, so :class:`OnnxModel` rebuilds the plan side
without the weights::

    from pointsam.export import OnnxModel
    net = OnnxModel("model.onnx")             # onnxruntime session + plan builder
    out = net(pos)                            # {"logits": array [1, classes], ...}

**Predicting with an export.** ``pointsam export`` also records the run's
prediction settings (:func:`~pointsam.engine.predict.prediction_record`: the
config with its evaluation transform, the task and its classes), and
:func:`load_exported` turns an ``.onnx`` or ``.pt2`` file into the ``runner``
of the one prediction path, :func:`~pointsam.engine.predict.predict_cloud`: a
cloud is prepared for the file exactly as for its checkpoint
(``pointsam predict --onnx`` / ``--pt2``, or :func:`predict_onnx`)::

    from pointsam.export import predict_onnx
    res = predict_onnx("model.onnx", read_cloud("chair.pcd"))  # or "model.pt2"

**End to end, for clouds of a fixed size.** With ``num_points=N``
(``pointsam export ... --end-to-end --num-points N``) the plan is traced into
the graph as well, computed by the dense torch ops of
:func:`pointsam.ops.fixed_size` (FPS as one ``scan``, kNN and ball query by
``topk`` over per-cloud distances): the graph takes the raw clouds, ``pos``
:math:`(B, N, 3)` (and ``x`` :math:`(B, N, C)`, ``category`` :math:`(B)`), for
any number of clouds B, and nothing but ONNX Runtime is needed to run it::

    net = OnnxModel("model_e2e.onnx")        # no pointsam model, no plan
    out = net(pos)                            # pos [B, N, 3] or [N, 3]

N is static: the number of FPS samples of every stage, the ``topk`` widths and
the length of the FPS loop are functions of it. Its FPS starts canonically
(the point farthest from the centroid), as ``ops.fps(backend="torch")``; the
default CPU plan (fpsample) may pick other samples, so the two paths agree on
the sampling rule, not always on the samples.

Exporting needs ``pip install pointsam[export]`` (onnx, onnxscript,
onnxruntime); ``.pt2`` needs only torch.

What does not export, and why (:class:`ExportError` names it):

- ``attention="mhsa"`` (:class:`~pointsam.nn.MultiHeadPointAttention`): its
  padding size is read from the data inside forward; use ``"local_global"``.
- :class:`~pointsam.nn.TemporalAttention` (``pointnet2_lite_temporal_lidarseg``)
  and its single-scan twin: they select scans from ``frame`` by boolean masks
  and search past scans inside forward; they are eager-only.
- DGCNN's dynamic graph exports as a dense per-cloud ``topk`` (``[B, W, W]``
  distances): fine for ModelNet/ShapeNet clouds; for scans export a
  ``static_graph=True`` model (``dgcnn_lite_semseg``).
"""

from __future__ import annotations

from .checks import META_KEY, ExportError
from .fold import fold_batch_norms
from .program import export_program, load_program, save_program
from .runtime import (
    OnnxModel,
    OnnxRunner,
    ProgramRunner,
    load_exported,
    predict_onnx,
)
from .to_onnx import export_onnx
from .wrappers import (
    FixedSizeModel,
    PlanNetwork,
    example_cloud,
    fixed_size_plan,
    plan_inputs,
)

__all__ = ["ExportError", "PlanNetwork", "export_program", "export_onnx",
           "save_program", "load_program", "OnnxModel", "example_cloud",
           "plan_inputs", "META_KEY", "predict_onnx", "load_exported",
           "OnnxRunner", "ProgramRunner", "FixedSizeModel",
           "fixed_size_plan", "fold_batch_norms"]
