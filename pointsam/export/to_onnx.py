"""ONNX export (the dynamo exporter), with pointsam's metadata in the file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._atomic import atomic_path
from .checks import META_KEY, ExportError, _explain
from .program import _folded, _meta, _prepare
from .runtime import OnnxModel

__all__ = ["export_onnx"]


def export_onnx(model: nn.Module, path: str | Path,
                example: Mapping[str, Tensor] | None = None, *,
                with_attention: bool = False, model_name: str | None = None,
                model_args: Mapping[str, Any] | None = None,
                extra_meta: Mapping[str, Any] | None = None,
                program: torch.export.ExportedProgram | None = None,
                optimize: bool = True, opset: int = 18,
                num_points: int | None = None, fold_bn: bool = True) -> Path:
    r"""Export the network of ``model`` to ONNX (dynamo exporter) at ``path``.

    Inputs are named ``pos``, ``x`` (when the model takes features),
    ``category`` (part segmentation) and ``plan.<key>``; outputs ``logits`` and,
    with ``with_attention``, ``attn.<module>.<weight>``. ``model_name`` /
    ``model_args`` (the registry entry) go into the file's metadata, so
    :class:`OnnxModel` can rebuild the plan; ``extra_meta`` (class names...) is
    stored with them. ``program`` (from :func:`export_program` with the same
    ``example`` and ``with_attention``) skips tracing the model a second time;
    ``optimize=False`` skips onnxscript's graph optimizer (half the export time;
    ONNX Runtime still optimises the graph when it loads it). ``num_points=N``
    exports end to end (:class:`FixedSizeModel`): inputs ``pos`` :math:`(B, N,
    3)`, ``x``, ``category``, no plan inputs; the metadata then holds
    ``"end_to_end": true`` and ``"num_points": N``. An end-to-end graph skips
    onnxscript's optimizer whatever ``optimize`` says: with onnxscript 0.7.2 the
    optimized ``pointnet2_lite_semseg`` graph gives NaN logits in ONNX Runtime
    1.32 (the unoptimized one equals eager to 1e-7); ONNX Runtime still
    optimises the graph when it loads it. ``fold_bn`` (default) exports a copy
    with every eval-mode ``Linear -> BatchNorm1d`` pair folded into one Linear
    (:func:`fold_batch_norms`; ONNX Runtime does not fuse that pair itself:
    15% of ``pointnet2_lite_cls``'s time at 32 x 1024 points); ``model`` is not
    changed. A given ``program`` is used as it is (:func:`export_program` folds
    by default). The metadata records the SHA-256 of the weights
    (``"weights_sha256"``, :meth:`OnnxModel.weights_sha256`), which
    :class:`OnnxModel` verifies at load (``verify_weights=False`` skips it).
    """
    import os

    try:
        import onnx
    except ImportError as e:
        raise ExportError("ONNX export needs onnx and onnxscript: pip install "
                          "'pointsam[export]'") from e
    net, names, tensors, outputs, dynamic, extra = _prepare(
        _folded(model, fold_bn and program is None), example, with_attention,
        num_points)
    try:
        with torch.no_grad():
            prog = torch.onnx.export(program if program is not None else net,
                                     tuple(tensors), input_names=names,
                                     output_names=outputs,
                                     dynamic_shapes=dynamic,
                                     dynamo=True, opset_version=opset, verbose=False,
                                     # end to end: never (see the docstring)
                                     optimize=optimize and num_points is None,
                                     report=False)
    except ExportError:
        raise
    except Exception as e:
        if os.environ.get("POINTSAM_DEBUG"):
            raise
        raise _explain(e) from None
    path = Path(path)
    with atomic_path(path) as tmp:  # a full disk keeps the previous file
        prog.save(str(tmp))
        proto = onnx.load(str(tmp))
        meta = _meta(model, names, outputs, model_name, model_args,  # + weights' hash
                     {**extra, **dict(extra_meta or {}),
                      "weights_sha256": OnnxModel.weights_sha256(proto)})
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta)
        onnx.save(proto, str(tmp))
    return path
