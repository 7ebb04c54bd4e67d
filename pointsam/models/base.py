r"""The model contract: what every registered model declares about itself.

As timm's models declare ``num_classes``, ``num_features`` and
``pretrained_cfg``, every model of :func:`~pointsam.models.create_model` is a
:class:`PointModel` and declares the facts its callers need (the trainer, the
prediction path, export, viz): nobody reads them by ``getattr`` or compares
class names.

- :attr:`task`: ``"cls"`` (logits per cloud), ``"partseg"`` or ``"semseg"``
  (logits per point).
- :attr:`in_channels`: per-point features read from ``x`` (0: xyz only; a
  caller then leaves ``x`` out).
- :attr:`num_classes`, :attr:`num_categories` (part segmentation's shape
  categories, else 0).
- :attr:`min_points`: the fewest distinct points an answer means anything on
  (the neighbourhood size of the first stage).
- :attr:`num_past`: earlier scans a multi-scan model reads besides the newest
  (0: one scan, as one file holds).
- :attr:`reads_frame`: the model takes ``frame`` (which scan each point is of,
  0 = newest) in ``forward`` and ``plan(..., frame=...)``: the multi-scan
  segmenter and its single-scan twin.
- :attr:`export_blocker` / :attr:`end_to_end_blocker`: ``None`` when the
  network (with the plan in Python) / the whole model (plan in the graph)
  exports, else why not (the message of the refusal).
- :meth:`plan` / :meth:`network`: the geometry plan from ``pos``/``batch``
  alone and the exportable network on it (DESIGN.md section 9).

**The one boundary.** ``forward(data)`` validates the input once
(:func:`~pointsam.models.heads.unpack`: ``pos``, ``batch``, the clouds) and runs
its children inside :func:`pointsam.ops.trusted`, so that no inner module
checks again.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

__all__ = ["PointModel", "WrapperModel"]


class PointModel(nn.Module):
    r"""Base class of the registered models: the declared contract (see the module).

    Subclasses set :attr:`task` (class level or property) and the sizes, and
    implement ``forward``, :meth:`plan` and :meth:`network`. The defaults:
    ``in_channels = 0``, ``num_categories = 0``, ``min_points = 1``,
    ``num_past = 0``, export allowed unless a submodule declares
    ``export_blocker`` (:class:`~pointsam.nn.base.PointModule`).

    Example:
        >>> from pointsam.models import create_model
        >>> m = create_model("pointnet2_lite_cls", num_classes=4)
        >>> m.task, m.in_channels, m.num_classes, m.min_points, m.export_blocker
        ('cls', 0, 4, 16, None)
    """

    #: ``"cls"``, ``"partseg"`` or ``"semseg"``
    task: ClassVar[str] = ""
    #: why an end-to-end export (plan in the graph) is refused, or ``None``
    end_to_end_reason: ClassVar[str | None] = None
    #: ``plan()`` takes ``frame=`` (which scan each point is of)
    reads_frame: ClassVar[bool] = False

    @property
    def in_channels(self) -> int:
        """Per-point features read from ``x`` (0: xyz only)."""
        return 0

    @property
    def num_classes(self) -> int:  # pragma: no cover - every subclass sets it
        raise NotImplementedError

    @property
    def num_categories(self) -> int:
        """Shape categories of part segmentation (0 for other tasks)."""
        return 0

    @property
    def min_points(self) -> int:
        """The fewest distinct points an answer of this model means anything on."""
        return 1

    @property
    def num_past(self) -> int:
        """Earlier scans read besides the newest (0: one scan)."""
        return 0

    @property
    def per_point(self) -> bool:
        """Logits per point (segmentation) rather than per cloud."""
        return self.task != "cls"

    @property
    def export_blocker(self) -> str | None:
        """Why the network cannot be exported (``None``: it can): the first
        submodule that declares a reason (a module that reads sizes from the
        data inside forward, or searches inside it)."""
        from pointsam.nn.base import PointModule

        for name, m in self.named_modules():
            why = m.export_blocker if isinstance(m, PointModule) else None
            if why:
                return f"{name}: {type(m).__name__} {why}"
        return None

    @property
    def end_to_end_blocker(self) -> str | None:
        """Why the plan cannot go into the exported graph (``None``: it can)."""
        return self.export_blocker or self.end_to_end_reason

    def plan(self, pos: Tensor, batch: Tensor | None = None, *,
             batch_size: int | None = None) -> dict[str, Tensor]:  # pragma: no cover
        """The geometry plan: every index and weight from ``pos``/``batch``."""
        raise NotImplementedError(f"{type(self).__name__} has no plan()/network() "
                                  "split")

    def network(self, x: Tensor | None, pos: Tensor, plan: dict[str, Tensor],
                category: Tensor | None = None) -> Tensor:  # pragma: no cover
        """Logits from a :meth:`plan` (plain tensor ops: what exports)."""
        raise NotImplementedError(f"{type(self).__name__} has no plan()/network() "
                                  "split")


class WrapperModel(PointModel):
    """A :class:`PointModel` around an inner segmenter ``self.net`` (a
    :class:`PointModel` too): its class count and fewest points are the inner
    model's (the LiDAR segmenters that compute their own input feature)."""

    net: PointModel

    @property
    def num_classes(self) -> int:
        return self.net.num_classes

    @property
    def min_points(self) -> int:
        return self.net.min_points
