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

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import ops
from ..models.base import PointModel
from ..nn.base import record_attention
from ..nn.network import tracing
from .fold import fold_batch_norms

__all__ = ["ExportError", "PlanNetwork", "export_program", "export_onnx",
           "save_program", "load_program", "OnnxModel", "example_cloud",
           "plan_inputs", "META_KEY", "predict_onnx", "load_exported",
           "OnnxRunner", "ProgramRunner", "FixedSizeModel",
           "fixed_size_plan", "fold_batch_norms"]

#: key of the JSON metadata in the ONNX file / the ``.pt2`` archive
META_KEY = "pointsam"


class ExportError(ValueError):
    """A model or option that cannot be exported: names the op and the way around."""


def _check_exportable(model: nn.Module) -> PointModel:
    """``model`` as a :class:`~pointsam.models.PointModel` whose network exports;
    an :class:`ExportError` with its declared reason otherwise."""
    if not isinstance(model, PointModel):
        raise ExportError(f"{type(model).__name__} is not a pointsam model "
                          "(PointModel, with a plan()/network() split); only the "
                          "registered models export")
    why = model.export_blocker
    if why:
        raise ExportError(why)
    return model


def _attention_names(model: nn.Module, x: Tensor | None, pos: Tensor,
                     plan: Mapping[str, Tensor], category: Tensor | None
                     ) -> list[tuple[str, str]]:
    with torch.no_grad(), record_attention(model) as rec:
        model.network(x, pos, dict(plan), category=category)
    return [(m, k) for m in sorted(rec) for k in sorted(rec[m])]


def _output_name(module: str, key: str) -> str:
    return f"attn.{module}.{key}"


class PlanNetwork(nn.Module):
    r"""The exportable module: ``forward(pos, [x], [category], *plan) -> logits``.

    ``plan`` is given as tensors in the order of :attr:`plan_keys`; with
    ``attention`` (pairs ``(module name, weight name)``) the recorded attention
    weights follow the logits as further outputs.
    """

    def __init__(self, model: nn.Module, plan_keys: Sequence[str], *,
                 has_x: bool, has_category: bool,
                 attention: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__()
        self.model = model
        self.plan_keys = list(plan_keys)
        self.has_x, self.has_category = has_x, has_category
        self.attention = list(attention)

    def forward(self, pos: Tensor, *args: Tensor) -> Any:
        args_l = list(args)
        x = args_l.pop(0) if self.has_x else None
        category = args_l.pop(0) if self.has_category else None
        plan = dict(zip(self.plan_keys, args_l))
        if not self.attention:
            return self.model.network(x, pos, plan, category=category)
        with record_attention(self.model, detach=False) as rec:
            out = self.model.network(x, pos, plan, category=category)
        return (out, *[rec[m][k] for m, k in self.attention])


def fixed_size_plan(model: nn.Module, pos: Tensor) -> tuple[Tensor, Tensor,
                                                            dict[str, Tensor]]:
    r"""The plan of B clouds of N points with the dense torch ops, in eager.

    What the end-to-end graph of :func:`export_onnx` (``num_points=N``) computes
    inside: ``model.plan`` run in :func:`pointsam.ops.fixed_size` (FPS from the
    canonical start, kNN / ball query by ``topk`` per cloud). Equal to
    ``model.plan`` with ``fps(backend="torch")`` and a torch kNN, up to exact
    distance ties.

    Shapes:
        - **input:** pos :math:`(B, N, 3)`
        - **output:** ``(pos [B N, 3], batch [B N], plan)``, the clouds packed
          one after the other (the layout ``model.network`` takes)
    """
    if pos.dim() != 3 or pos.size(-1) != 3:
        raise ValueError(f"pos must be B clouds of N points, [B, N, 3]; got "
                         f"{list(pos.shape)}")
    b, n = pos.size(0), pos.size(1)
    flat = pos.reshape(b * n, 3)  # [B N, 3]
    if not tracing():
        ops.check_pos(flat, "pos")
    batch = torch.arange(b, device=pos.device).unsqueeze(1).expand(b, n)  # [B, N]
    batch = batch.reshape(b * n)  # [B N]
    with ops.trusted(), ops.fixed_size(b):
        plan = model.plan(flat, batch, batch_size=b)
    return flat, batch, plan


class FixedSizeModel(nn.Module):
    r"""The end-to-end exportable module: plan and network of B clouds of N points.

    ``forward(pos, [x], [category])`` with pos :math:`(B, N, 3)`, x
    :math:`(B, N, C_{in})` (models with features), category :math:`(B)` (part
    segmentation) computes :func:`fixed_size_plan` and then ``model.network``.
    Returns the logits, :math:`(B, 	ext{classes})` (classification) or
    :math:`(B, N, 	ext{classes})` (segmentation), then, with ``attention``,
    the recorded weights as the network returns them (packed: the rows of
    cloud b are :math:`[b N', (b + 1) N')` of its level).
    """

    def __init__(self, model: nn.Module, num_points: int, *, has_x: bool,
                 has_category: bool, attention: Sequence[tuple[str, str]] = ()
                 ) -> None:
        super().__init__()
        self.model, self.num_points = model, int(num_points)
        self.has_x, self.has_category = has_x, has_category
        self.per_point = model.per_point
        self.attention = list(attention)

    def forward(self, pos: Tensor, *args: Tensor) -> Any:
        args_l = list(args)
        b, n = pos.size(0), self.num_points
        x = args_l.pop(0).reshape(b * n, -1) if self.has_x else None  # [B N, C]
        category = args_l.pop(0) if self.has_category else None
        flat, _, plan = fixed_size_plan(self.model, pos)
        if self.attention:
            with record_attention(self.model, detach=False) as rec:
                out = self.model.network(x, flat, plan, category=category)
            extra = [rec[m][k] for m, k in self.attention]
        else:
            out = self.model.network(x, flat, plan, category=category)
            extra = []
        if self.per_point:  # [B N, classes] -> [B, N, classes]
            out = out.reshape(b, n, -1)
        return (out, *extra) if extra else out


def plan_inputs(model: nn.Module, pos: Tensor, batch: Tensor | None = None, *,
                x: Tensor | None = None, category: Tensor | None = None
                ) -> tuple[list[str], list[Tensor]]:
    """Input names and tensors of the exported network for one batch."""
    model = _check_exportable(model)
    with torch.no_grad():
        plan = model.plan(pos, batch)
    keys = sorted(plan)
    names, tensors = ["pos"], [pos]
    has_x, has_cat = _takes(model)
    if has_x:
        if x is None:
            raise ValueError(f"the model takes features x [N, {model.in_channels}]")
        names.append("x")
        tensors.append(x)
    if has_cat:
        if category is None:
            raise ValueError("part segmentation needs category [B]")
        names.append("category")
        tensors.append(torch.as_tensor(category).long().flatten())
    names += [f"plan.{k}" for k in keys]
    tensors += [plan[k] for k in keys]
    return names, tensors


#: plan tables of shape [B, W] (per-cloud padding): both dimensions are dynamic
_PADDING_MASKS = (".dense_mask", ".q_mask", ".t_mask")


def _dynamic_shapes(names: Sequence[str], tensors: Sequence[Tensor]) -> list[Any]:
    dyn = torch.export.Dim.DYNAMIC
    out: list[Any] = []
    for name, t in zip(names, tensors):
        if t.dim() == 0:
            out.append(None)
        elif name.endswith(_PADDING_MASKS):
            out.append({0: dyn, 1: dyn})  # [B, W] padding masks
        else:
            out.append({0: dyn})  # rows: points, centres, clouds
    return [out[0], tuple(out[1:])]  # forward(pos, *args)


def _meta(model: nn.Module, names: Sequence[str], outputs: Sequence[str],
          model_name: str | None, model_args: Mapping[str, Any] | None,
          extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    task = _check_exportable(model).task
    return {"model_name": model_name, "model_args": dict(model_args or {}),
            "inputs": list(names), "outputs": list(outputs), "task": task,
            **dict(extra or {})}


def _prepare(model: nn.Module, example: Mapping[str, Tensor] | None,
             with_attention: bool, num_points: int | None = None
             ) -> tuple[nn.Module, list[str], list[Tensor], list[str], list[Any],
                        dict[str, Any]]:
    """``(module, input names, example inputs, output names, dynamic shapes,
    extra metadata)`` of the network (``num_points=None``) or of the
    end-to-end model of clouds of ``num_points`` points."""
    _check_exportable(model)
    model = model.eval()
    if num_points is not None:
        return _prepare_fixed(model, example, with_attention, num_points)
    ex = dict(example) if example is not None else example_cloud(model)
    names, tensors = plan_inputs(model, ex["pos"], ex.get("batch"), x=ex.get("x"),
                                 category=ex.get("category"))
    plan = dict(zip([n[5:] for n in names if n.startswith("plan.")],
                    [t for n, t in zip(names, tensors) if n.startswith("plan.")]))
    has_x, has_cat = _takes(model)
    attn: list[tuple[str, str]] = []
    if with_attention:
        x = tensors[1] if has_x else None
        cat = tensors[1 + has_x] if has_cat else None
        attn = _attention_outputs(model, x, ex["pos"], plan, cat)
    net = PlanNetwork(model, sorted(plan), has_x=has_x, has_category=has_cat,
                      attention=attn).eval()
    outputs = ["logits"] + [_output_name(m, k) for m, k in attn]
    return net, names, tensors, outputs, _dynamic_shapes(names, tensors), {}


def _takes(model: nn.Module) -> tuple[bool, bool]:
    """Whether the model takes features ``x`` and a ``category`` (declared)."""
    m = _check_exportable(model)
    return m.in_channels > 0, m.num_categories > 0


def _attention_outputs(model: nn.Module, x: Tensor | None, pos: Tensor,
                       plan: Mapping[str, Tensor], category: Tensor | None
                       ) -> list[tuple[str, str]]:
    attn = _attention_names(model, x, pos, plan, category)
    if not attn:
        raise ExportError("--with-attention: the model records no attention "
                          "weights (attention=None); export without it")
    return attn


def _prepare_fixed(model: nn.Module, example: Mapping[str, Tensor] | None,
                   with_attention: bool, num_points: int
                   ) -> tuple[nn.Module, list[str], list[Tensor], list[str],
                              list[Any], dict[str, Any]]:
    ops.check_positive_int(num_points, "num_points")
    why = _check_exportable(model).end_to_end_blocker
    if why:
        raise ExportError(f"{type(model).__name__} cannot be exported end to end: "
                          f"{why}")
    has_x, has_cat = _takes(model)
    c_in = _check_exportable(model).in_channels
    if example is not None:
        ex = dict(example)
        if ex["pos"].dim() != 3 or ex["pos"].size(1) != num_points:
            raise ValueError(f"an end-to-end example is pos [B, {num_points}, 3], "
                             f"got {list(ex['pos'].shape)}")
    else:  # two clouds, so that B is not specialised to 1
        g = torch.Generator().manual_seed(0)
        ex = {"pos": torch.rand(2, num_points, 3, generator=g) * 2 - 1}
        if has_x:
            ex["x"] = torch.rand(2, num_points, c_in, generator=g)
        if has_cat:
            ex["category"] = torch.zeros(2, dtype=torch.long)
    names, tensors = ["pos"], [ex["pos"]]
    if has_x:
        if ex.get("x") is None:
            raise ValueError(f"the model takes features x [B, N, {c_in}]")
        names.append("x")
        tensors.append(ex["x"])
    if has_cat:
        if ex.get("category") is None:
            raise ValueError("part segmentation needs category [B]")
        names.append("category")
        tensors.append(torch.as_tensor(ex["category"]).long().flatten())
    attn: list[tuple[str, str]] = []
    if with_attention:
        with torch.no_grad():
            flat, _, plan = fixed_size_plan(model, ex["pos"])
        x = ex["x"].reshape(flat.size(0), -1) if has_x else None
        attn = _attention_outputs(model, x, flat, plan,
                                  tensors[-1] if has_cat else None)
    net = FixedSizeModel(model, num_points, has_x=has_x, has_category=has_cat,
                         attention=attn).eval()
    outputs = ["logits"] + [_output_name(m, k) for m, k in attn]
    dyn = torch.export.Dim.DYNAMIC
    dynamic: list[Any] = [{0: dyn}]  # B only; N static
    if len(tensors) > 1:  # forward(pos, *args)
        dynamic.append(tuple({0: dyn} for _ in tensors[1:]))
    return net, names, tensors, outputs, dynamic, {"end_to_end": True,
                                                   "num_points": num_points}


def _explain(e: Exception) -> ExportError:
    msg = str(e).strip().splitlines()
    first = next((ln for ln in msg if ln.strip()), type(e).__name__)
    where = next((ln.strip() for ln in msg if "pointsam/" in ln), "")
    return ExportError(f"the network could not be traced ({type(e).__name__}: "
                       f"{first[:300]}){' at ' + where if where else ''}. Export a "
                       f"model whose attention is none/cbam/local/local_global/axial "
                       f"(set POINTSAM_DEBUG=1 for the exporter's traceback)")


def _folded(model: nn.Module, fold_bn: bool) -> nn.Module:
    """What is traced: ``model``, or (``fold_bn``) an eval copy with its
    BatchNorms folded; refusals (:func:`_check_exportable`) come first."""
    if not fold_bn:
        return model
    _check_exportable(model)
    return fold_batch_norms(model.eval())[0]


def export_program(model: nn.Module, example: Mapping[str, Tensor] | None = None, *,
                   with_attention: bool = False, num_points: int | None = None,
                   fold_bn: bool = True
                   ) -> tuple[torch.export.ExportedProgram, dict[str, Any]]:
    r"""``torch.export`` the network of ``model``: ``(ExportedProgram, meta)``.

    Args:
        model: A model with a plan/network split (the registered models).
        example: ``{"pos", "batch", "x", "category"}`` tensors to trace with
            (default: :func:`example_cloud`). The number of points and clouds
            stay dynamic. End to end: ``pos`` :math:`(B, N, 3)`, ``x``
            :math:`(B, N, C)`, ``category`` :math:`(B)` (default: two random
            clouds).
        with_attention: Also return every recorded attention weight.
        num_points: Export end to end (plan included, :class:`FixedSizeModel`)
            for clouds of exactly this many points; the inputs are then the raw
            clouds. (default: ``None``, the network only)
        fold_bn: Trace a copy with every eval-mode ``Linear -> BatchNorm1d``
            pair folded into one Linear (:func:`fold_batch_norms`, the same
            function up to float rounding); ``model`` is not changed.
            (default: ``True``)
    """
    import os

    net, names, tensors, outputs, dynamic, extra = _prepare(
        _folded(model, fold_bn), example, with_attention, num_points)
    try:
        with torch.no_grad():
            ep = torch.export.export(net, tuple(tensors), dynamic_shapes=dynamic)
    except ExportError:
        raise
    except Exception as e:  # the exporter's own errors: name the cause
        if os.environ.get("POINTSAM_DEBUG"):
            raise
        raise _explain(e) from None
    return ep, _meta(model, names, outputs, None, None, extra)


def save_program(ep: torch.export.ExportedProgram, meta: Mapping[str, Any],
                 path: str | Path) -> Path:
    """Write an ExportedProgram and its metadata as one ``.pt2`` archive."""
    path = Path(path)
    torch.export.save(ep, str(path), extra_files={META_KEY: json.dumps(dict(meta))})
    return path


def load_program(path: str | Path) -> tuple[torch.export.ExportedProgram,
                                            dict[str, Any]]:
    """``(ExportedProgram, meta)`` from :func:`save_program`'s archive."""
    extra = {META_KEY: ""}
    ep = torch.export.load(str(path), extra_files=extra)
    return ep, json.loads(extra[META_KEY] or "{}")


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
    prog.save(str(path))
    proto = onnx.load(str(path))
    meta = _meta(model, names, outputs, model_name, model_args,  # + the weights' hash
                 {**extra, **dict(extra_meta or {}),
                  "weights_sha256": OnnxModel.weights_sha256(proto)})
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(proto, str(path))
    return path


def example_cloud(model: nn.Module, num_points: int | Sequence[int] = (1100, 1000)
                  ) -> dict[str, Tensor]:
    """A random example batch to trace with: one cloud per entry of ``num_points``
    (default two clouds of different sizes, so that no size is specialised)."""
    sizes = [num_points] if isinstance(num_points, int) else list(num_points)
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(sum(sizes), 3, generator=g) * 2 - 1
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    num_clouds = len(sizes)
    out = {"pos": pos, "batch": batch}
    has_x, has_cat = _takes(model)
    if has_x:
        out["x"] = torch.rand(pos.size(0), _check_exportable(model).in_channels,
                              generator=g)
    if has_cat:
        out["category"] = torch.zeros(num_clouds, dtype=torch.long)
    return out


from .runtime import (  # noqa: E402  (needs the above)
    OnnxModel,
    OnnxRunner,
    ProgramRunner,
    load_exported,
    predict_onnx,
)
