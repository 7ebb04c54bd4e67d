"""Running an export: :class:`OnnxModel` (session + plan), the runners that put
an ``.onnx`` or ``.pt2`` file behind the one prediction path, :func:`predict_onnx`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checks import META_KEY, ExportError
from .wrappers import plan_inputs

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

    **The file is checked before it is trusted**, each failure one
    :class:`ExportError` line that names what the file is: a missing file
    (``FileNotFoundError``), an empty one, a zip archive (a ``.pt2`` program
    or a torch checkpoint), a pickle, text, or bytes that do not parse as an
    ONNX protobuf (truncated, when they start like one); a graph without
    pointsam's metadata, or whose inputs, outputs or ``logits`` (rank of the
    metadata's task, width of its classes) are not the ones the metadata
    describes (a foreign graph carrying a copy of it); and weights that differ
    from the hash :func:`~pointsam.export.export_onnx` recorded
    (``"weights_sha256"``, :meth:`weights_sha256`; a file written before the
    hash was recorded is not checked).

    Args:
        path: The ``.onnx`` file.
        threads: ONNX Runtime's intra-op threads (default: its own choice).
        model: The pointsam model for the plan (default: built from the
            metadata's registry name).
        verify_weights: Check the weights against the recorded hash (needs the
            ``onnx`` package). Whoever edits a graph on purpose (quantises it,
            prunes it, fine-tunes it in another tool) passes ``False``; the
            graph checks still apply. (default: ``True``)
    """

    def __init__(self, path: str | Path, *, threads: int | None = None,
                 model: nn.Module | None = None, verify_weights: bool = True) -> None:
        self._sniff(Path(path))
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ExportError("running an ONNX model needs onnxruntime: pip install "
                              "'pointsam[export]'") from e
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # ONNX Runtime's own errors: name what the file is
            raise self._load_error(Path(path), e) from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(META_KEY)
        if raw is None:
            raise ExportError(f"{path} was not written by pointsam export (no "
                              f"'{META_KEY}' metadata)")
        try:
            self.meta = json.loads(raw)
        except ValueError:
            raise ExportError(f"{path}: its '{META_KEY}' metadata is not JSON (a "
                              "damaged or hand-written file)") from None
        self.path = str(path)
        self._check_graph()
        if verify_weights and self.meta.get("weights_sha256"):
            self._verify_weights()
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

    @staticmethod
    def weights_sha256(proto: Any) -> str:
        """SHA-256 of an ``onnx.ModelProto``'s weights: each initializer of the
        main graph, in the order of their names, as its name and its raw bytes."""
        from onnx import numpy_helper

        h = hashlib.sha256()
        for t in sorted(proto.graph.initializer, key=lambda t: t.name):
            h.update(t.name.encode() + b"\0")
            h.update(t.raw_data or numpy_helper.to_array(t).tobytes())
        return h.hexdigest()

    @staticmethod
    def _sniff(path: Path) -> None:
        """Refuse, naming it, a file that cannot be an ONNX model (first bytes)."""
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such ONNX file")
        if path.is_dir():
            raise ExportError(f"{path} is a directory, not an ONNX file")
        with path.open("rb") as f:
            head = f.read(8)
        if not head:
            raise ExportError(f"{path} is empty (0 bytes), not an ONNX model (an "
                              "interrupted export or copy?); export it again "
                              "(pointsam export CHECKPOINT --format onnx)")
        if head.startswith(b"PK\x03\x04"):
            import zipfile

            try:
                names = zipfile.ZipFile(path).namelist()
            except (zipfile.BadZipFile, OSError):
                raise ExportError(f"{path} is a damaged or truncated zip archive "
                                  "(a .pt2 program or a torch checkpoint?), not an "
                                  "ONNX model") from None
            if any(n.endswith(("/archive_format", "/models/model.json"))
                   for n in names):
                raise ExportError(f"{path} is a .pt2 program (a torch.export "
                                  "archive), not an ONNX model: predict with "
                                  f"--pt2 {path}")
            if any(n.endswith("data.pkl") for n in names):
                raise ExportError(f"{path} is a torch checkpoint (a torch.save zip "
                                  "archive), not an ONNX model: predict with it as "
                                  "CHECKPOINT, or export it first (pointsam export "
                                  f"{path} --format onnx --out model.onnx)")
            raise ExportError(f"{path} is a zip archive, not an ONNX model")
        if head[:1] == b"\x80":
            raise ExportError(f"{path} is a pickle (a legacy torch.save file?), not "
                              "an ONNX model")

    @staticmethod
    def _load_error(path: Path, e: Exception) -> Exception:
        """One line for ONNX Runtime's refusal of a file that passed :meth:`_sniff`."""
        with path.open("rb") as f:
            head = f.read(64)
        if type(e).__name__ in ("InvalidProtobuf", "InvalidArgument"):
            if head[:1] == b"\x08":  # field 1, ir_version: how every ONNX file starts
                return ExportError(
                    f"{path} starts like an ONNX model but does not parse "
                    f"({path.stat().st_size:,} bytes): truncated or corrupted; "
                    "export it again")
            text = head.split(b"\n")[0][:40]
            if text and all(32 <= c < 127 or c == 9 for c in text):
                return ExportError(f"{path} is a text file (it starts with "
                                   f"{text.decode()!r}), not an ONNX model")
            return ExportError(f"{path} is not an ONNX model (not an ONNX protobuf; "
                               f"it starts with {head[:8]!r})")
        msg = str(e).split("failed:", 1)[-1].strip().splitlines() or [""]
        return ExportError(f"{path}: ONNX Runtime cannot load it: {msg[0][:300]}")

    def _check_graph(self) -> None:
        """The graph is the one the metadata describes: inputs, outputs, and the
        rank and width of ``logits`` against the task and its classes."""
        meta, path = self.meta, self.path
        foreign = ("; the graph is not the one pointsam exported with this "
                   "metadata (a foreign or edited graph)")
        names = [i.name for i in self.session.get_inputs()]
        want = meta.get("inputs")
        if want is not None and sorted(want) != sorted(names):
            raise ExportError(f"{path}: the graph takes inputs {names}, its metadata "
                              f"names {list(want)}{foreign}")
        outs = {o.name: o for o in self.session.get_outputs()}
        want = meta.get("outputs") or ["logits"]
        if sorted(want) != sorted(outs) or "logits" not in outs:
            raise ExportError(f"{path}: the graph gives outputs {list(outs)}, its "
                              f"metadata names {list(want)}{foreign}")
        shape = list(outs["logits"].shape)
        task = meta.get("task")
        rank = 3 if meta.get("end_to_end") and task not in (None, "cls") else 2
        if task is not None and len(shape) != rank:
            raise ExportError(f"{path}: its logits have shape {shape}, not the "
                              f"{rank} dimensions of a {task} model{foreign}")
        rec = (meta.get("prediction") or {}).get("meta") or {}
        classes = rec.get("num_classes", (meta.get("model_args") or {}).get(
            "num_classes"))
        width = shape[-1] if shape else None
        if isinstance(width, int) and classes is not None and width != int(classes):
            raise ExportError(f"{path}: its logits have {width} columns, but its "
                              f"metadata describes a {task} model of {classes} "
                              f"classes{foreign}")

    def _verify_weights(self) -> None:
        try:
            import onnx
        except ImportError:
            raise ExportError(f"{self.path}: checking its weights needs the onnx "
                              "package (pip install 'pointsam[export]'), or load it "
                              "with OnnxModel(path, verify_weights=False)") from None
        want = self.meta["weights_sha256"]
        got = self.weights_sha256(onnx.load(self.path))
        if got != want:
            raise ExportError(
                f"{self.path}: its weights are not the ones exported (sha256 "
                f"{got[:12]}..., the metadata records {want[:12]}...): the file was "
                "damaged or edited after `pointsam export`. Export it again; a graph "
                "edited on purpose loads with OnnxModel(path, verify_weights=False)")

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
               x: Tensor | None = None, category: Tensor | None = None,
               frame: Tensor | None = None) -> dict[str, Any]:
        """The session's feed: ``pos``, ``x``, ``category`` and the plan (or, end
        to end, the clouds as :math:`(B, N, *)`); ``frame`` [N] (which scan each
        point is of) for a multi-scan model."""
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
        names, tensors = plan_inputs(self.model, pos, batch, x=x, category=category,
                                     frame=frame)
        feed = dict(zip(names, tensors))
        return {n: feed[n].numpy() for n in self.input_names}

    def __call__(self, pos: Tensor, batch: Tensor | None = None, *,
                 x: Tensor | None = None, category: Tensor | None = None,
                 frame: Tensor | None = None) -> dict[str, Any]:
        feed = self.inputs(pos, batch, x=x, category=category, frame=frame)
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
        from .program import load_program

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
