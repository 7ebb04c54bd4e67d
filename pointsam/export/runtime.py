"""ONNX Runtime side: :class:`OnnxModel` (session + plan) and :func:`predict_onnx`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import META_KEY, ExportError, plan_inputs

__all__ = ["OnnxModel", "predict_onnx"]


class OnnxModel:
    r"""An exported network in ONNX Runtime, with the plan from :mod:`pointsam.ops`.

    The plan side is rebuilt from the file's metadata (registry name and
    arguments; no weights needed); ``__call__(pos, batch=None, x=None,
    category=None)`` computes the plan with :mod:`pointsam.ops` and runs the
    session. Returns ``{output name: numpy array}`` (``"logits"`` first).
    """

    def __init__(self, path: str | Path, *, threads: int | None = None,
                 model: nn.Module | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ExportError("running an ONNX model needs onnxruntime: pip install "
                              "'pointsam[export]'") from e
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts,
                                            providers=["CPUExecutionProvider"])
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if raw is None:
            raise ExportError(f"{path} was not written by pointsam export (no "
                              f"'{META_KEY}' metadata)")
        self.meta = json.loads(raw)
        if model is None:
            if not self.meta.get("model_name"):
                raise ExportError(f"{path} does not name its model; pass model=")
            from ..models import create_model

            model = create_model(self.meta["model_name"], **self.meta["model_args"])
        self.model = model.eval()
        self.input_names = [i.name for i in self.session.get_inputs()]

    def inputs(self, pos: Tensor, batch: Tensor | None = None, *,
               x: Tensor | None = None, category: Tensor | None = None
               ) -> dict[str, Any]:
        """The session's feed: ``pos``, ``x``, ``category`` and the plan."""
        names, tensors = plan_inputs(self.model, pos, batch, x=x, category=category)
        feed = dict(zip(names, tensors))
        return {n: feed[n].numpy() for n in self.input_names}

    def __call__(self, pos: Tensor, batch: Tensor | None = None, *,
                 x: Tensor | None = None, category: Tensor | None = None
                 ) -> dict[str, Any]:
        feed = self.inputs(pos, batch, x=x, category=category)
        outs = self.session.run(None, feed)
        return dict(zip([o.name for o in self.session.get_outputs()], outs))


def _unit_sphere(pos: Tensor) -> Tensor:
    pos = pos - pos.mean(0, keepdim=True)
    return pos / pos.norm(dim=1).max().clamp(min=1e-12)


def predict_onnx(path: str | Path, data: Any, *, category: int | None = None,
                 threads: int | None = None) -> dict[str, Any]:
    r"""Predict on one cloud (a ``Data`` with ``pos``) with an exported network.

    Classification and part segmentation see the cloud centred and scaled to
    the unit sphere (as in evaluation); semantic segmentation sees the scan
    as it is, in one pass (no voxel chunks). Returns the dict of
    :func:`pointsam.engine.predict.predict_cloud` (``label``/``probs`` or
    ``labels``/``probs``) plus ``meta`` (the file's metadata).
    """
    net = OnnxModel(path, threads=threads)
    task = net.meta.get("task", "semseg")
    pos = data.pos.float()
    x = getattr(data, "x", None)
    cat = None
    if task == "partseg":
        if category is None:
            raise ValueError("part segmentation needs the shape's category "
                             "(--category)")
        cat = torch.tensor([int(category)])
    if task in ("cls", "partseg"):
        pos = _unit_sphere(pos)
    bb = getattr(net.model, "backbone", net.model)
    x = x.float() if x is not None and getattr(bb, "in_channels", 0) else None
    logits = torch.from_numpy(net(pos, x=x, category=cat)["logits"]).float()
    prob = logits.softmax(-1)
    if task == "cls":
        return {"task": "cls", "label": int(prob[0].argmax()),
                "probs": prob[0].tolist(), "meta": net.meta}
    return {"task": task, "labels": prob.argmax(-1), "probs": prob, "meta": net.meta}
