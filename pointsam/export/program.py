"""Tracing: the example inputs, dynamic shapes and metadata of an export, and
``torch.export`` programs saved with their metadata (``.pt2``)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .. import ops
from .._atomic import atomic_write_bytes
from .checks import META_KEY, ExportError, _check_exportable, _explain, _takes
from .fold import fold_batch_norms
from .wrappers import (
    FixedSizeModel,
    PlanNetwork,
    _attention_outputs,
    _output_name,
    example_cloud,
    fixed_size_plan,
    plan_inputs,
)

__all__ = ["export_program", "save_program", "load_program"]


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
                                 category=ex.get("category"), frame=ex.get("frame"))
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
    """Write an ExportedProgram and its metadata as one ``.pt2`` archive.

    The archive is built in memory and then written atomically
    (:func:`pointsam._atomic.atomic_write_bytes`): ``torch.export.save`` into a
    file on a full disk aborts the process (``c10::Error`` thrown from C++),
    while a failed write of the bytes is an ``OSError``, so a full disk becomes
    :class:`~pointsam._atomic.OutOfSpaceError` and keeps the previous file.
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.export.save(ep, buf, extra_files={META_KEY: json.dumps(dict(meta))})
    atomic_write_bytes(path, buf.getbuffer())
    return path


def load_program(path: str | Path) -> tuple[torch.export.ExportedProgram,
                                            dict[str, Any]]:
    """``(ExportedProgram, meta)`` from :func:`save_program`'s archive."""
    extra = {META_KEY: ""}
    ep = torch.export.load(str(path), extra_files=extra)
    return ep, json.loads(extra[META_KEY] or "{}")
