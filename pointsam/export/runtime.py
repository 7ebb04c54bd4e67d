"""Running an export: :class:`OnnxModel` (session + plan), the runners that put
an ``.onnx`` or ``.pt2`` file behind the one prediction path, :func:`predict_onnx`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import META_KEY, ExportError, plan_inputs

__all__ = ["OnnxModel", "OnnxRunner", "ProgramRunner", "load_exported", "predict_onnx"]


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
    which size the graph takes).
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


def _ragged(batch: Any) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """``(pos, batch, x, category)`` of a PyG ``Batch`` as float/long tensors."""
    pos = batch.pos.float()
    b = getattr(batch, "batch", None)
    b = torch.zeros(pos.size(0), dtype=torch.long) if b is None else b
    x = getattr(batch, "x", None)
    cat = getattr(batch, "category", None)
    return pos, b, (x.float() if x is not None else None), cat


def _per_point(logits: Tensor, task: str) -> Tensor:
    """An end-to-end graph's segmentation logits, [B, N, C] -> [B N, C]."""
    return logits.reshape(-1, logits.size(-1)) if task != "cls" else logits


class OnnxRunner(nn.Module):
    r"""An ONNX file as the ``runner(Batch) -> logits`` of
    :func:`~pointsam.engine.predict.predict_cloud`: the batch the prediction
    path prepared goes through ONNX Runtime instead of the eager model.

    Shapes:
        - **input:** a PyG ``Batch`` (``pos`` :math:`(N, 3)`, ``batch``, ``x``,
          ``category``)
        - **output:** logits :math:`(B, \text{classes})` or
          :math:`(N, \text{classes})`
    """

    def __init__(self, net: OnnxModel) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: Any) -> Tensor:
        pos, b, x, cat = _ragged(batch)
        out = self.net(pos, b, x=x if "x" in self.net.input_names else None,
                       category=cat)
        logits = torch.from_numpy(out["logits"]).float()
        return _per_point(logits, self.net.meta.get("task", "semseg")) \
            if self.net.end_to_end else logits


class ProgramRunner(nn.Module):
    r"""A ``.pt2`` program (:func:`~pointsam.export.save_program`) as the
    ``runner(Batch) -> logits`` of :func:`~pointsam.engine.predict.predict_cloud`.

    The plan comes from ``model.plan`` (the model rebuilt from the file's
    registry name; no weights needed), or, end to end, from the program itself.
    """

    def __init__(self, program: Any, meta: dict[str, Any], model: nn.Module) -> None:
        super().__init__()
        self.program, self.meta = program, meta
        self.model = model  # the plan side only: the weights are the program's
        self.module_ = program.module()

    def forward(self, batch: Any) -> Tensor:
        pos, b, x, cat = _ragged(batch)
        inputs = self.meta.get("inputs", [])
        if not self.meta.get("end_to_end"):
            _, tensors = plan_inputs(self.model, pos, b, x=x, category=cat)
            return self.module_(*tensors).float()
        n = int(self.meta["num_points"])
        counts = torch.bincount(b)
        if bool((counts != n).any()):
            raise ValueError(f"this end-to-end program takes clouds of exactly {n} "
                             f"points; got clouds of {sorted(set(counts.tolist()))} "
                             f"points. Export again with --num-points, or without "
                             f"--end-to-end")
        args: list[Tensor] = [pos.reshape(-1, n, 3)]  # [B, N, 3]
        if "x" in inputs:
            assert x is not None
            args.append(x.reshape(-1, n, x.size(-1)))  # [B, N, C]
        if "category" in inputs:
            args.append(torch.as_tensor(cat).long().flatten())  # [B]
        return _per_point(self.module_(*args).float(), self.meta.get("task", ""))


def load_exported(path: str | Path, *, threads: int | None = None
                  ) -> tuple[nn.Module, Any, Any, dict[str, Any], nn.Module]:
    r"""``(model, task, config, meta, runner)`` of an ``.onnx`` or ``.pt2`` export.

    The counterpart of :func:`pointsam.engine.predict.load_trained`: ``model``
    is the registered architecture (built from the file's registry name, for
    its plan and declared structure; its weights are not used), ``task`` /
    ``config`` / ``meta`` come from the prediction record that ``pointsam
    export`` writes, and ``runner(Batch) -> logits`` runs the exported network.
    ``predict_cloud(model, task, cfg, data, runner=runner)`` then prepares the
    cloud exactly as for the checkpoint. ``meta["export"]`` holds the file's
    own metadata.
    """
    from ..engine.predict import RECORD_KEY, from_prediction_record
    from ..models import create_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such exported model file")
    if path.suffix.lower() == ".pt2":
        from . import load_program

        program, info = load_program(path)
        runner: nn.Module | None = None
    else:
        net = OnnxModel(path, threads=threads)
        info = net.meta
    task, cfg, meta = from_prediction_record(info.get(RECORD_KEY), str(path))
    name = info.get("model_name")
    if not name:
        raise ExportError(f"{path} does not name its model (registry name); "
                          f"export it with `pointsam export`")
    model = create_model(name, **dict(info.get("model_args") or {})).eval()
    if path.suffix.lower() == ".pt2":
        runner = ProgramRunner(program, info, model)
    else:
        if not net.end_to_end:
            net.model = model
        runner = OnnxRunner(net)
    meta = {**meta, "export": info}
    return model, task, cfg, meta, runner


def predict_onnx(path: str | Path, data: Any, *, category: int | None = None,
                 threads: int | None = None) -> dict[str, Any]:
    r"""Predict on one cloud (a ``Data`` with ``pos``) with an exported file.

    :func:`load_exported` then :func:`~pointsam.engine.predict.predict_cloud`:
    the cloud is prepared as for the checkpoint the file was exported from (its
    evaluation transform: unit sphere and farthest-point sampling to
    ``data.num_points`` for objects, the category's parts for part
    segmentation, the voxel grid and chunks of a whole scan), so the file and
    the checkpoint give the same answer up to float rounding. Works for
    ``.onnx`` and ``.pt2`` files alike. Returns :func:`predict_cloud`'s dict
    plus ``meta`` (the run's metadata, the file's own under ``"export"``).

    An end-to-end graph takes clouds of exactly its ``num_points`` N (the
    export records ``data.num_points = N`` for objects, and for scans one pass
    of N points, no voxel grid); a segmentation cloud of another size is
    refused with the size the graph takes.
    """
    from ..engine.predict import predict_cloud

    model, task, cfg, meta, runner = load_exported(path, threads=threads)
    res = predict_cloud(model, task, cfg, data, category=category, runner=runner)
    return {**res, "meta": meta}
