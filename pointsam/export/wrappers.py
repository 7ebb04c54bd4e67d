"""The exportable modules and their inputs: the network on a plan, the whole
model for clouds of a fixed size, the plan as named inputs, example clouds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import ops
from ..nn.base import record_attention
from ..nn.network import tracing
from .checks import ExportError, _check_exportable, _takes

__all__ = ["PlanNetwork", "FixedSizeModel", "fixed_size_plan", "plan_inputs",
           "example_cloud"]


def _attention_names(model: nn.Module, x: Tensor | None, pos: Tensor,
                     plan: Mapping[str, Tensor], category: Tensor | None
                     ) -> list[tuple[str, str]]:
    with torch.no_grad(), record_attention(model) as rec:
        model.network(x, pos, dict(plan), category=category)
    return [(m, k) for m in sorted(rec) for k in sorted(rec[m])]


def _output_name(module: str, key: str) -> str:
    return f"attn.{module}.{key}"


def _attention_outputs(model: nn.Module, x: Tensor | None, pos: Tensor,
                       plan: Mapping[str, Tensor], category: Tensor | None
                       ) -> list[tuple[str, str]]:
    attn = _attention_names(model, x, pos, plan, category)
    if not attn:
        raise ExportError("--with-attention: the model records no attention "
                          "weights (attention=None); export without it")
    return attn


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
                x: Tensor | None = None, category: Tensor | None = None,
                frame: Tensor | None = None) -> tuple[list[str], list[Tensor]]:
    """Input names and tensors of the exported network for one batch (``frame``
    [N]: which scan each point is of, for a model that :attr:`reads_frame
    <pointsam.models.PointModel.reads_frame>`)."""
    model = _check_exportable(model)
    if frame is not None and not model.reads_frame:
        raise ValueError(f"{type(model).__name__} reads one scan: it takes no frame")
    if frame is None and model.num_past > 0:
        raise ValueError(f"a multi-scan model (num_past={model.num_past}) needs "
                         "frame [N]: which scan each point is of (0 = newest)")
    with torch.no_grad():
        plan = (model.plan(pos, batch, frame=frame) if frame is not None
                else model.plan(pos, batch))
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


def example_cloud(model: nn.Module, num_points: int | Sequence[int] = (1100, 1000)
                  ) -> dict[str, Tensor]:
    """A random example batch to trace with: one cloud per entry of ``num_points``
    (default two clouds of different sizes, so that no size is specialised). A
    multi-scan model (``num_past`` T > 0) gets ``frame`` too: each cloud split
    into T + 1 scans of different sizes, 5 m across (its voxels and balls are
    metres)."""
    sizes = [num_points] if isinstance(num_points, int) else list(num_points)
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(sum(sizes), 3, generator=g) * 2 - 1
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    num_clouds = len(sizes)
    out = {"pos": pos, "batch": batch}
    t = _check_exportable(model).num_past
    if t > 0:
        out["pos"] = pos * 5.0
        share = torch.arange(t + 1, 0, -1, dtype=torch.float64)  # scan 0 largest
        frames = []
        for n in sizes:
            counts = (share / share.sum() * n).long()
            counts[0] += n - int(counts.sum())
            frames.append(torch.repeat_interleave(torch.arange(t + 1), counts))
        out["frame"] = torch.cat(frames)  # [N]
    has_x, has_cat = _takes(model)
    if has_x:
        out["x"] = torch.rand(pos.size(0), _check_exportable(model).in_channels,
                              generator=g)
    if has_cat:
        out["category"] = torch.zeros(num_clouds, dtype=torch.long)
    return out
