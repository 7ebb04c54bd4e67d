r"""Metrics for classification, part segmentation and semantic segmentation.

Each metric accumulates integer or float *state tensors* batch by batch, so that
the state of several DDP ranks is summed with one ``all_reduce``
(:meth:`Metric.reduce`) before :meth:`Metric.compute`.

- :class:`ClsMetrics`: confusion matrix :math:`M_{ij}` (true i, predicted j),
  overall accuracy :math:`\mathrm{OA} = \sum_i M_{ii} / \sum_{ij} M_{ij}`, mean
  class accuracy :math:`\mathrm{mAcc} = \frac{1}{|C'|}\sum_{i \in C'} M_{ii} /
  \sum_j M_{ij}` over the classes :math:`C'` present in the truth.
- :class:`PartSegMetrics`: the ShapeNetPart rule. For shape s of category c with
  parts :math:`P_c`, :math:`\mathrm{IoU}_s = \frac{1}{|P_c|}\sum_{p \in P_c}
  \mathrm{IoU}_{s,p}` with :math:`\mathrm{IoU}_{s,p} = 1` when part p is in
  neither prediction nor truth. Instance mIoU averages over shapes, class mIoU
  over categories (each the mean of its shapes; categories with no shape skipped).
  Predictions should already be restricted to the category's parts
  (:func:`restrict_to_category`, from :mod:`pointsam.ops.parts`, with the table
  as a mask from :func:`category_part_mask`).
- :class:`SemSegMetrics`: confusion over points whose label is not
  ``ignore_index``; :math:`\mathrm{IoU}_c = TP_c / (TP_c + FP_c + FN_c)`, NaN for a
  class absent from both prediction and truth; mIoU averages the non-NaN classes;
  OA over the non-ignored points.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from pointsam.ops.parts import category_part_mask, restrict_to_category

__all__ = [
    "Metric",
    "ClsMetrics",
    "PartSegMetrics",
    "SemSegMetrics",
    "box_iou",
    "restrict_to_category",
    "category_part_mask",
]


class Metric:
    """Base: named state tensors that add up over batches and ranks."""

    _state: tuple[str, ...] = ()

    def state(self) -> list[Tensor]:
        return [getattr(self, n) for n in self._state]

    def reduce(self) -> None:
        """Sum the state over DDP ranks (no-op outside a process group)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for t in self.state():
                dist.all_reduce(t)

    def compute(self) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError


def _confusion(target: Tensor, pred: Tensor, num_classes: int) -> Tensor:
    idx = target.long() * num_classes + pred.long()  # [N]
    return (
        torch.bincount(idx, minlength=num_classes * num_classes)
        .view(num_classes, num_classes)
        .cpu()
    )  # [C, C] rows = truth


def _check_pair(pred: Tensor, target: Tensor, num_classes: int) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} "
            "must have the same shape"
        )
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(f"pred holds a class outside 0..{num_classes - 1}")


class ClsMetrics(Metric):
    r"""Overall accuracy, mean class accuracy and the confusion matrix.

    Example:
        >>> m = ClsMetrics(3)
        >>> m.update(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
        >>> r = m.compute(); r["oa"], r["macc"]
        (0.75, 0.8333333333333334)
    """

    _state = ("confusion",)

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add a batch: ``pred`` and ``target`` are class ids of shape ``[B]``."""
        _check_pair(pred, target, self.num_classes)
        if target.numel() and (
            int(target.min()) < 0 or int(target.max()) >= self.num_classes
        ):
            raise ValueError(f"target holds a class outside 0..{self.num_classes - 1}")
        self.confusion += _confusion(target, pred, self.num_classes)

    def compute(self) -> dict[str, float]:
        cm = self.confusion.double()
        total = cm.sum()
        support = cm.sum(1)
        present = support > 0
        acc = cm.diag()[present] / support[present]
        return {
            "oa": float(cm.diag().sum() / total) if total > 0 else float("nan"),
            "macc": float(acc.mean()) if present.any() else float("nan"),
        }


class PartSegMetrics(Metric):
    r"""Instance and class mIoU with the ShapeNetPart rule (see module docstring).

    Example:
        >>> # one category with parts {0, 1}; one shape of 4 points
        >>> m = PartSegMetrics([[0, 1]], num_parts=2)
        >>> m.update(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1]),
        ...          category=torch.tensor([0]), batch=torch.zeros(4, dtype=torch.long))
        >>> r = m.compute(); r["instance_miou"]  # (1/2 + 2/3) / 2
        0.5833333333333333
    """

    _state = ("iou_sum", "count")

    def __init__(self, category_parts: Sequence[Sequence[int]], num_parts: int) -> None:
        self.num_parts = num_parts
        self.part_mask = category_part_mask(category_parts, num_parts)  # [Cat, P]
        self.iou_sum = torch.zeros(len(category_parts), dtype=torch.float64)
        self.count = torch.zeros(len(category_parts), dtype=torch.float64)

    def update(
        self, pred: Tensor, target: Tensor, category: Tensor, batch: Tensor
    ) -> None:
        """Add shapes: ``pred``/``target`` ``[N]`` part ids, ``category`` ``[B]``.

        Args:
            pred: ``[N]`` predicted global part ids in ``0..P-1``.
            target: ``[N]`` true global part ids; each must be a part of its
                shape's category (part segmentation has no ignore label).
            category: ``[B]`` category of each shape, in ``0..num_categories-1``.
            batch: ``[N]`` shape of each point, in ``0..B-1``.

        Raises:
            ValueError: mismatched shapes, or a part id, category or shape index
                out of range, or a target part that its shape's category does
                not have.
        """
        _check_pair(pred, target, self.num_parts)
        pred, target = pred.cpu().long(), target.cpu().long()
        batch, category = batch.cpu().long(), category.cpu().long().view(-1)
        b, p = category.numel(), self.num_parts
        num_cat = self.part_mask.size(0)
        if batch.shape != target.shape:
            raise ValueError(
                f"batch {tuple(batch.shape)} must have the shape of target "
                f"{tuple(target.shape)}"
            )
        if b and (int(category.min()) < 0 or int(category.max()) >= num_cat):
            raise ValueError(
                f"category holds a category outside 0..{num_cat - 1}: "
                f"{sorted(set(category.tolist()))}"
            )
        if batch.numel() and (int(batch.min()) < 0 or int(batch.max()) >= b):
            raise ValueError(
                f"batch refers to shapes outside 0..{b - 1} (category has {b} "
                "entries, one per shape)"
            )
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= p):
            raise ValueError(
                f"target holds a part outside 0..{p - 1} (part segmentation has "
                "no ignore label)"
            )
        own = self.part_mask[category[batch], target]  # [N] target in its category
        if not bool(own.all()):
            i = int((~own).nonzero()[0, 0])
            c = int(category[batch[i]])
            raise ValueError(
                f"target part {int(target[i])} (point {i}) is not a part of its "
                f"shape's category {c}, whose parts are "
                f"{self.part_mask[c].nonzero().view(-1).tolist()}"
            )
        eq = pred == target
        inter = torch.bincount(batch[eq] * p + target[eq], minlength=b * p)  # [B*P]
        n_pred = torch.bincount(batch * p + pred, minlength=b * p)  # [B*P]
        n_true = torch.bincount(batch * p + target, minlength=b * p)  # [B*P]
        inter, union = (
            inter.view(b, p).double(),
            (n_pred + n_true).view(b, p) - inter.view(b, p),
        )
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))
        mask = self.part_mask[category].double()  # [B, P]
        shape_iou = (iou * mask).sum(1) / mask.sum(1)  # [B]
        self.iou_sum.index_add_(0, category, shape_iou)
        self.count.index_add_(0, category, torch.ones_like(shape_iou))

    def compute(self) -> dict[str, float]:
        seen = self.count > 0
        if not seen.any():
            return {"instance_miou": float("nan"), "class_miou": float("nan")}
        per_cat = self.iou_sum[seen] / self.count[seen]
        return {
            "instance_miou": float(self.iou_sum.sum() / self.count.sum()),
            "class_miou": float(per_cat.mean()),
        }


class SemSegMetrics(Metric):
    r"""Per-class IoU, mIoU and overall accuracy with an ignore label: the one
    definition of the project (every semantic-segmentation number it reports).

    .. math::
        \mathrm{IoU}_c = \frac{TP_c}{TP_c + FP_c + FN_c}, \qquad
        \mathrm{mIoU} = \frac{1}{|V|} \sum_{c \in V} \mathrm{IoU}_c, \quad
        V = \{c : TP_c + FP_c + FN_c > 0\}

    over every point whose label is not ``ignore_index``. A class neither in the
    ground truth nor predicted is left out of the mean (its IoU is NaN); a class
    predicted but absent from the ground truth counts with IoU 0. This is
    torchmetrics' ``MulticlassJaccardIndex(average="macro")`` (tested against
    it). On a whole benchmark every class occurs and it equals the SemanticKITTI
    API's mean over all classes; on one scan the API would also count the
    absent classes as 0. OA is the share of scored points predicted right.

    Example:
        >>> m = SemSegMetrics(3, ignore_index=-1)
        >>> m.update(torch.tensor([0, 0, 1, 2, 1]), torch.tensor([0, 1, 1, -1, 1]))
        >>> r = m.compute(); r["iou"], r["miou"]  # class 2 absent everywhere: NaN
        ([0.5, 0.6666666666666666, nan], 0.5833333333333333)
    """

    _state = ("confusion",)

    def __init__(self, num_classes: int, ignore_index: int = -1) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)

    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add points: ``pred`` and ``target`` ``[N]``; ``ignore_index`` skipped."""
        _check_pair(pred, target, self.num_classes)
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        if target.numel() and (
            int(target.min()) < 0 or int(target.max()) >= self.num_classes
        ):
            raise ValueError(
                f"target holds a class outside 0..{self.num_classes - 1} that is not "
                f"the ignore label {self.ignore_index}"
            )
        self.confusion += _confusion(target, pred, self.num_classes)

    def compute(self) -> dict[str, float | list[float]]:  # type: ignore[override]
        cm = self.confusion.double()
        tp = cm.diag()
        denom = cm.sum(0) + cm.sum(1) - tp
        iou = torch.where(
            denom > 0, tp / denom.clamp(min=1), torch.full_like(tp, float("nan"))
        )
        valid = ~iou.isnan()
        total = cm.sum()
        return {
            "miou": float(iou[valid].mean()) if valid.any() else float("nan"),
            "oa": float(tp.sum() / total) if total > 0 else float("nan"),
            "iou": [float(v) for v in iou],
        }


def box_iou(pred: Tensor, y: Tensor, scored: Tensor, cls: int) -> dict[str, float]:
    r"""IoU of class ``cls`` against box-derived truth (:mod:`pointsam.data.kitti_boxes`).

    Over the scored points :math:`S` (where the boxes say for every point
    whether it is of a boxed class),

    .. math::
        \mathrm{IoU} = \frac{|\{i \in S: y_i = c, \hat y_i = c\}|}
        {|\{i \in S: y_i = c \text{ or } \hat y_i = c\}|},

    the IoU of :class:`SemSegMetrics` for one class, on the points the truth
    covers (NaN when neither the truth nor the prediction has the class). Also
    returns the counts, so that frames pool by summing.

    Example:
        >>> r = box_iou(torch.tensor([0, 0, 1, 0]), torch.tensor([0, -1, 0, 0]),
        ...             torch.tensor([True, True, True, False]), 0)
        >>> r["iou"], r["tp"], r["union"]
        (0.3333333333333333, 1, 3)
    """
    if not (pred.shape == y.shape == scored.shape):
        raise ValueError(f"pred, y and scored must have one shape, got "
                         f"{list(pred.shape)}, {list(y.shape)}, {list(scored.shape)}")
    t = (y == cls) & scored
    p = (pred == cls) & scored
    tp, union = int((t & p).sum()), int((t | p).sum())
    return {"iou": tp / union if union else float("nan"), "tp": tp, "union": union,
            "truth": int(t.sum()), "predicted": int(p.sum())}
