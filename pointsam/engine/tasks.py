r"""What differs between classification, part and semantic segmentation.

A :class:`Task` knows the loss, the predictions, the metric and the score used
for model selection. Losses live here, not in the models (models return logits).

- ``cls``: logits ``[B, C]``, target ``y`` ``[B]``, cross-entropy; selection on OA.
- ``partseg``: logits ``[N, P]`` over all global part ids, target ``y`` ``[N]``,
  ``category`` ``[B]``; cross-entropy over points; predictions restricted to the
  category's parts; selection on instance mIoU.
- ``semseg``: logits ``[N, C]``, target ``y`` ``[N]`` with ``ignore_index``;
  cross-entropy ignoring it; selection on mIoU. A multi-scan sample (``frame``
  [N], 0 = newest scan, as ``SemanticKITTI``/``SyntheticLidar`` with
  ``num_scans > 1`` give) is scored on its newest scan only, as the
  SemanticKITTI multi-scan benchmark is: the model returns logits for every
  point (``[N, C]``, the rows of frame 0 are taken) or for the newest scan's
  points only (``[N_0, C]``, in their order in the batch, what
  ``pointnet2_lite_temporal_lidarseg`` returns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .metrics import (
    ClsMetrics,
    Metric,
    PartSegMetrics,
    SemSegMetrics,
    category_part_mask,
    restrict_to_category,
)

__all__ = ["Task", "ClsTask", "PartSegTask", "SemSegTask", "make_task", "newest_scan",
           "class_weights"]


class Task:
    """Loss, prediction and metric of one kind of problem."""

    name: str = ""
    score_key: str = ""

    def __init__(self, num_classes: int, *, label_smoothing: float = 0.0) -> None:
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def loss(self, logits: Tensor, data: Any) -> Tensor:
        raise NotImplementedError

    def new_metrics(self) -> Metric:
        raise NotImplementedError

    def update(self, metrics: Metric, scores: Tensor, data: Any) -> None:
        raise NotImplementedError

    def count(self, data: Any) -> int:
        """Number of loss terms in a batch (for averaging the loss over ranks)."""
        return int(data.y.numel())

    def meta(self) -> dict[str, Any]:
        return {"task": self.name, "num_classes": self.num_classes}


def _check_logits(logits: Tensor, rows: int, cols: int, what: str) -> None:
    if logits.dim() != 2 or logits.size(0) != rows or logits.size(1) != cols:
        raise ValueError(
            f"model returned logits {tuple(logits.shape)}; the {what} "
            f"task expects [{rows}, {cols}]"
        )


class ClsTask(Task):
    """Shape classification."""

    name, score_key = "cls", "oa"

    def loss(self, logits: Tensor, data: Any) -> Tensor:
        y = data.y.view(-1).long()
        _check_logits(logits, y.numel(), self.num_classes, "classification")
        return F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)

    def new_metrics(self) -> ClsMetrics:
        return ClsMetrics(self.num_classes)

    def update(self, metrics: Metric, scores: Tensor, data: Any) -> None:
        assert isinstance(metrics, ClsMetrics)
        metrics.update(scores.argmax(-1).cpu(), data.y.view(-1).cpu())


class PartSegTask(Task):
    """Part segmentation with categories (ShapeNetPart rule).

    Args:
        category_parts: Global part ids of each category.
        num_parts: Total number of global part ids.
    """

    name, score_key = "partseg", "instance_miou"

    def __init__(
        self,
        category_parts: Sequence[Sequence[int]],
        num_parts: int,
        *,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(num_parts, label_smoothing=label_smoothing)
        self.category_parts = [list(map(int, p)) for p in category_parts]
        self.part_mask = category_part_mask(self.category_parts, num_parts)

    def loss(self, logits: Tensor, data: Any) -> Tensor:
        y = data.y.view(-1).long()
        _check_logits(logits, y.numel(), self.num_classes, "part segmentation")
        return F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)

    def new_metrics(self) -> PartSegMetrics:
        return PartSegMetrics(self.category_parts, self.num_classes)

    def update(self, metrics: Metric, scores: Tensor, data: Any) -> None:
        assert isinstance(metrics, PartSegMetrics)
        category = data.category.view(-1)
        pred = restrict_to_category(scores, category, data.batch, self.part_mask)
        metrics.update(
            pred.argmax(-1).cpu(),
            data.y.view(-1).cpu(),
            category.cpu(),
            data.batch.cpu(),
        )

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "category_parts": self.category_parts}


def newest_scan(logits: Tensor, data: Any) -> tuple[Tensor, Tensor]:
    """``(logits, y)`` of the points a semantic segmentation is scored on.

    Every point without ``data.frame``; with it, the newest scan's points
    (``frame == 0``): ``logits`` may have a row per point or per newest point.
    """
    y = data.y.view(-1).long()
    frame = getattr(data, "frame", None)
    if frame is None:
        return logits, y
    newest = frame.view(-1) == 0  # [N]
    y = y[newest]  # [N_0]
    if logits.dim() == 2 and logits.size(0) == newest.numel() != y.numel():
        logits = logits[newest]  # [N_0, C]
    return logits, y


class SemSegTask(Task):
    """Semantic segmentation with an ignore label and optional class weights.

    ``class_weight`` [C] weighs each class's points in the cross-entropy (see
    :func:`class_weights`); the metrics never use it.
    """

    name, score_key = "semseg", "miou"

    def __init__(
        self, num_classes: int, *, ignore_index: int = -1, label_smoothing: float = 0.0,
        class_weight: Tensor | None = None,
    ) -> None:
        super().__init__(num_classes, label_smoothing=label_smoothing)
        self.ignore_index = ignore_index
        if class_weight is not None and class_weight.shape != (num_classes,):
            raise ValueError(f"class_weight must be [{num_classes}], got "
                             f"{list(class_weight.shape)}")
        self.class_weight = class_weight

    def loss(self, logits: Tensor, data: Any) -> Tensor:
        logits, y = newest_scan(logits, data)
        _check_logits(logits, y.numel(), self.num_classes, "semantic segmentation")
        if bool((y == self.ignore_index).all()):
            return logits.sum() * 0.0  # keeps the graph (and DDP) happy
        w = self.class_weight
        return F.cross_entropy(
            logits.float(),
            y,
            weight=w.to(logits.device) if w is not None else None,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
        )

    def count(self, data: Any) -> int:
        y = data.y.view(-1)
        frame = getattr(data, "frame", None)
        if frame is not None:
            y = y[frame.view(-1) == 0]
        return int((y != self.ignore_index).sum())

    def new_metrics(self) -> SemSegMetrics:
        return SemSegMetrics(self.num_classes, self.ignore_index)

    def update(self, metrics: Metric, scores: Tensor, data: Any) -> None:
        assert isinstance(metrics, SemSegMetrics)
        scores, y = newest_scan(scores, data)
        _check_logits(scores, y.numel(), self.num_classes, "semantic segmentation")
        metrics.update(scores.argmax(-1).cpu(), y.cpu())

    def meta(self) -> dict[str, Any]:
        return {**super().meta(), "ignore_index": self.ignore_index}


def class_weights(counts: Tensor, power: float = 0.5, cap: float = 10.0) -> Tensor:
    r"""Loss weights :math:`w_c \propto n_c^{-p}`, mean 1 over seen classes, <= cap.

    ``counts`` [C] are the labelled points per class of the train split; a
    class with no point gets weight 0 (it never appears in a target).

    Example:
        >>> class_weights(torch.tensor([100, 25, 0])).tolist()
        [0.6666666865348816, 1.3333333730697632, 0.0]
    """
    n = counts.double()
    w = torch.where(n > 0, n.clamp(min=1) ** -power, torch.zeros_like(n))
    seen = n > 0
    w = w / w[seen].mean() if seen.any() else w
    return w.clamp(max=cap).float()


def make_task(meta: dict[str, Any], *, label_smoothing: float = 0.0) -> Task:
    """Rebuild a task from :meth:`Task.meta` (as stored in a checkpoint)."""
    name = meta.get("task")
    if name == "cls":
        return ClsTask(int(meta["num_classes"]), label_smoothing=label_smoothing)
    if name == "partseg":
        return PartSegTask(
            meta["category_parts"],
            int(meta["num_classes"]),
            label_smoothing=label_smoothing,
        )
    if name == "semseg":
        return SemSegTask(
            int(meta["num_classes"]),
            ignore_index=int(meta.get("ignore_index", -1)),
            label_smoothing=label_smoothing,
        )
    raise ValueError(f"unknown task {name!r}; valid tasks: cls, partseg, semseg")
