"""The base class of pointsam's datasets: indexing and the optional transform."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from torch import Tensor
from torch.utils.data import Dataset
from torch_geometric.data import Data

__all__ = ["PointDataset"]


class PointDataset(Dataset):
    """A map-style dataset of PyG ``Data`` samples with an optional ``transform``.

    A subclass sets ``self.transform`` (a callable ``Data -> Data`` or ``None``)
    and defines ``__len__`` and :meth:`get` (sample ``idx`` in ``0..len-1``
    before the transform); :meth:`__getitem__` accepts negative indices, raises
    ``IndexError`` outside ``-len..len-1`` (naming :attr:`item_name`) and applies
    the transform.

    **Declared metadata** (the engine reads these, never other attribute names):
    :attr:`splits` (the values of the ``split`` argument), :attr:`val_split`
    (a split that validates instead of a carve-out of train, or ``None``),
    :attr:`classes` (label names, in label order), :attr:`num_classes`,
    :attr:`ignore_index` (the unscored label, or ``None``), and for part
    segmentation :attr:`categories` and :attr:`category_parts`.

    Example:
        >>> class Two(PointDataset):
        ...     transform = None
        ...     def __len__(self): return 2
        ...     def get(self, idx): return Data(idx=idx)
        >>> Two()[-1].idx, len(Two())
        (1, 2)
    """

    #: What one sample is called in the out-of-range message.
    item_name = "samples"
    transform: Callable[[Data], Data] | None
    #: The values the constructor's ``split`` argument takes.
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    #: The split that validates (instead of a fixed-seed carve-out of train).
    val_split: ClassVar[str | None] = None
    #: Label names in label order (classification / semantic segmentation).
    classes: tuple[str, ...] = ()
    #: Shape categories (part segmentation), in category-id order.
    categories: tuple[str, ...] = ()
    #: The label that is not scored (semantic segmentation), or ``None``.
    ignore_index: int | None = None

    @property
    def num_classes(self) -> int:
        """Labels the targets use (``len(classes)`` unless a subclass says)."""
        return len(self.classes)

    @property
    def category_parts(self) -> list[list[int]] | None:
        """Part ids of each category, in category order (part segmentation)."""
        return None

    def class_counts(self) -> Tensor | None:
        """Labelled points per class over the split (semantic segmentation's
        class weights), or ``None`` when the dataset does not count them
        without reading every sample."""
        return None

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def get(self, idx: int) -> Data:  # pragma: no cover - abstract
        """Sample ``idx`` (``0 <= idx < len(self)``) before ``transform``."""
        raise NotImplementedError

    def __getitem__(self, idx: int) -> Data:
        if not -len(self) <= idx < len(self):
            raise IndexError(
                f"index {idx} out of range for {len(self)} {self.item_name}")
        data = self.get(idx % len(self))
        return self.transform(data) if self.transform is not None else data
