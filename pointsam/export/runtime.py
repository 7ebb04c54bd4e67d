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

    An end-to-end file (metadata ``"end_to_end": true``, exported with
    ``num_points=N``) computes its plan itself: no model is built, and the
    session is fed the raw clouds, ``pos`` :math:`(B, N, 3)`, or :math:`(B N,
    3)` with a ``batch`` of B clouds of N points each (one cloud when ``batch``
    is ``None``). A cloud of another size is refused (:attr:`num_points` says
    which size the graph takes); :func:`predict_onnx` resamples for
    classification.
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
        self.path = str(path)
        self.end_to_end = bool(self.meta.get("end_to_end"))
        #: the points per cloud of an end-to-end graph (``None``: any)
        self.num_points: int | None = self.meta.get("num_points")
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.model: nn.Module | None = None
        if self.end_to_end:  # the plan is in the graph: no model needed
            self.model = model.eval() if model is not None else None
            return
        if model is None:
            if not self.meta.get("model_name"):
                raise ExportError(f"{path} does not name its model; pass model=")
            from ..models import create_model

            model = create_model(self.meta["model_name"], **self.meta["model_args"])
        self.model = model.eval()

    def _clouds(self, t: Tensor, batch: Tensor | None, what: str) -> Tensor:
        """``t`` as B clouds of N points, [B, N, C]; a clear error otherwise."""
        n = self.num_points
        assert n is not None
        if t.dim() == 2:
            if batch is None:
                t = t.unsqueeze(0)  # [1, N', C]
            else:
                counts = torch.bincount(batch)
                if bool((counts != n).any()):
                    bad = sorted(set(counts.tolist()) - {n})
                    raise ValueError(f"{self.path} takes clouds of exactly {n} "
                                     f"points (an end-to-end export); the batch "
                                     f"has clouds of {bad} points. Resample each "
                                     f"cloud to {n} points, or export again with "
                                     f"--num-points")
                t = t.reshape(counts.numel(), n, -1)  # [B, N, C]
        if t.dim() != 3 or t.size(1) != n:
            got = t.size(1) if t.dim() == 3 else list(t.shape)
            raise ValueError(f"{self.path} takes clouds of exactly {n} points (an "
                             f"end-to-end export: its FPS sample counts are fixed "
                             f"by N); {what} has {got}. Resample the cloud to {n} "
                             f"points, or export again with --num-points {got}")
        return t

    def inputs(self, pos: Tensor, batch: Tensor | None = None, *,
               x: Tensor | None = None, category: Tensor | None = None
               ) -> dict[str, Any]:
        """The session's feed: ``pos``, ``x``, ``category`` and the plan (or, end
        to end, the clouds as :math:`(B, N, *)`)."""
        if self.end_to_end:
            feed = {"pos": self._clouds(pos.float(), batch, "pos")}
            if "x" in self.input_names:
                if x is None:
                    raise ValueError(f"{self.path} takes point features x")
                feed["x"] = self._clouds(x.float(), batch, "x")
            if "category" in self.input_names:
                if category is None:
                    raise ValueError("part segmentation needs category [B]")
                feed["category"] = torch.as_tensor(category).long().flatten()
            return {k: v.contiguous().numpy() for k, v in feed.items()}
        assert self.model is not None
        names, tensors = plan_inputs(self.model, pos, batch, x=x, category=category)
        feed = dict(zip(names, tensors))
        return {n: feed[n].numpy() for n in self.input_names}

    def __call__(self, pos: Tensor, batch: Tensor | None = None, *,
                 x: Tensor | None = None, category: Tensor | None = None
                 ) -> dict[str, Any]:
        feed = self.inputs(pos, batch, x=x, category=category)
        outs = self.session.run(None, feed)
        return dict(zip([o.name for o in self.session.get_outputs()], outs))


class _OrtSegmenter(nn.Module):
    """An :class:`OnnxModel` as the ``model(batch) -> logits`` that
    :func:`~pointsam.engine.inference.predict_scan` pushes chunks through."""

    def __init__(self, net: OnnxModel) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: Any) -> Tensor:
        x = getattr(batch, "x", None)
        out = self.net(batch.pos.float(), batch.batch,
                       x=x.float() if x is not None else None)
        return torch.from_numpy(out["logits"])  # [N, classes]


def _unit_sphere(pos: Tensor) -> Tensor:
    pos = pos - pos.mean(0, keepdim=True)
    return pos / pos.norm(dim=1).max().clamp(min=1e-12)


def predict_onnx(path: str | Path, data: Any, *, category: int | None = None,
                 threads: int | None = None) -> dict[str, Any]:
    r"""Predict on one cloud (a ``Data`` with ``pos``) with an exported network.

    Classification and part segmentation see the cloud centred and scaled to
    the unit sphere (as in evaluation). Semantic segmentation is voxelised and
    chunked as ``pointsam predict`` does when the file records how (the
    ``inference`` metadata, voxel size and chunk size, that ``pointsam export``
    writes for segmentation models; labels carried back to every point), and
    sees the scan as it is, in one pass, otherwise. Returns the dict of
    :func:`pointsam.engine.predict.predict_cloud` (``label``/``probs`` or
    ``labels``/``probs``) plus ``meta`` (the file's metadata).

    An end-to-end file takes clouds of exactly its ``num_points`` N. For
    classification a larger cloud is resampled to N points by farthest-point
    sampling (:func:`pointsam.ops.fps`, canonical start: deterministic and
    spread over the whole shape, as ModelNet's N-point clouds are made), and
    ``resampled`` in the result gives the original count; a smaller cloud, or a
    segmentation input of another size (every point needs its label), is
    refused with the size the graph takes.
    """
    net = OnnxModel(path, threads=threads)
    task = net.meta.get("task", "semseg")
    pos = data.pos.float()
    x = getattr(data, "x", None)
    resampled = None
    n = net.num_points
    if net.end_to_end and n is not None and pos.size(0) != n:
        if task != "cls" or pos.size(0) < n:
            why = ("every point needs its label" if task != "cls" else
                   "it has fewer points than the graph")
            raise ValueError(f"{path} is an end-to-end export for clouds of exactly "
                             f"{n} points and this cloud has {pos.size(0)} ({why}); "
                             f"export the model again with --num-points "
                             f"{pos.size(0)}, or use a plan-in-Python export "
                             f"(without --end-to-end), which takes any size")
        from .. import ops

        keep = ops.fps(pos, num=n)  # [N], canonical start: deterministic
        resampled = pos.size(0)
        pos = pos[keep]
        x = x[keep] if x is not None else None
    cat = None
    if task == "partseg":
        if category is None:
            raise ValueError("part segmentation needs the shape's category "
                             "(--category)")
        cat = torch.tensor([int(category)])
    if task in ("cls", "partseg"):
        pos = _unit_sphere(pos)
    x = x.float() if x is not None and "x" in net.input_names else None
    inference = net.meta.get("inference") or {}
    if task == "semseg" and not net.end_to_end and (
            inference.get("voxel_size") or inference.get("chunk_points")):
        from torch_geometric.data import Data

        from ..engine.inference import predict_scan

        chunk = int(inference.get("chunk_points") or 0)
        scan = Data(pos=pos) if x is None else Data(pos=pos, x=x)
        prob = predict_scan(_OrtSegmenter(net), scan,
                            voxel_size=float(inference.get("voxel_size") or 0.0),
                            chunk_points=chunk if pos.size(0) > chunk else 0)
        return {"task": task, "labels": prob.argmax(-1), "probs": prob,
                "meta": net.meta}
    logits = torch.from_numpy(net(pos, x=x, category=cat)["logits"]).float()
    if net.end_to_end and task != "cls":
        logits = logits[0]  # [1, N, classes] -> [N, classes]
    prob = logits.softmax(-1)
    if task == "cls":
        return {"task": "cls", "label": int(prob[0].argmax()),
                "probs": prob[0].tolist(), "meta": net.meta,
                "resampled": resampled}
    return {"task": task, "labels": prob.argmax(-1), "probs": prob, "meta": net.meta}
