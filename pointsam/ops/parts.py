r"""Category -> part tables and the per-category restriction of part logits.

Part segmentation labels every point with a *global* part id; each category
(shape class) owns a subset :math:`\mathcal{P}(c)` of them. At evaluation a
point's prediction is restricted to its shape's category:
:math:`\hat y_i = \arg\max_{l \in \mathcal{P}(c_{b(i)})} z_{il}` for the point i
of shape :math:`b(i)`.

This module holds ShapeNetPart's table (the standard ``seg_classes`` of the
PointNet++ / DGCNN evaluation code: category ``c``, in the alphabetical order of
``synsetoffset2category.txt``, which is also PyG ``ShapeNet``'s order, owns a
contiguous range of the 50 global part labels) and the one restriction rule,
which takes any table as a bool mask (:func:`category_part_mask`).

It sits in ``ops`` because it is the one layer below both :mod:`pointsam.models`
(default head sizes, :func:`pointsam.models.shapenet_parts.predict_parts`) and
:mod:`pointsam.data` (:class:`~pointsam.data.ShapeNetPart` checks its labels
against the table), which must not import each other; the engine's metrics use
the same function. It imports only torch and is stateless.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .batch import default_batch

__all__ = ["CATEGORIES", "SYNSETS", "SEG_CLASSES", "NUM_CATEGORIES", "NUM_PARTS",
           "PART_TO_CATEGORY", "category_part_mask", "shapenet_part_mask",
           "restrict_to_category"]

#: ShapeNetPart's 16 category names, in index order
CATEGORIES: tuple[str, ...] = (
    "Airplane", "Bag", "Cap", "Car", "Chair", "Earphone", "Guitar", "Knife", "Lamp",
    "Laptop", "Motorbike", "Mug", "Pistol", "Rocket", "Skateboard", "Table")
#: category name -> ShapeNetCore synset id (the folder names of the dataset)
SYNSETS: dict[str, str] = {
    "Airplane": "02691156", "Bag": "02773838", "Cap": "02954340",
    "Car": "02958343", "Chair": "03001627", "Earphone": "03261776",
    "Guitar": "03467517", "Knife": "03624134", "Lamp": "03636649",
    "Laptop": "03642806", "Motorbike": "03790512", "Mug": "03797390",
    "Pistol": "03948459", "Rocket": "04099429", "Skateboard": "04225987",
    "Table": "04379243"}
#: category name -> its global part labels (50 parts in all)
SEG_CLASSES: dict[str, list[int]] = {
    "Airplane": [0, 1, 2, 3], "Bag": [4, 5], "Cap": [6, 7], "Car": [8, 9, 10, 11],
    "Chair": [12, 13, 14, 15], "Earphone": [16, 17, 18], "Guitar": [19, 20, 21],
    "Knife": [22, 23], "Lamp": [24, 25, 26, 27], "Laptop": [28, 29],
    "Motorbike": [30, 31, 32, 33, 34, 35], "Mug": [36, 37], "Pistol": [38, 39, 40],
    "Rocket": [41, 42, 43], "Skateboard": [44, 45, 46], "Table": [47, 48, 49]}
NUM_CATEGORIES = len(CATEGORIES)
NUM_PARTS = sum(len(v) for v in SEG_CLASSES.values())
#: part label -> category index
PART_TO_CATEGORY: tuple[int, ...] = tuple(
    c for c, name in enumerate(CATEGORIES) for _ in SEG_CLASSES[name])


def category_part_mask(
    category_parts: Sequence[Sequence[int]], num_parts: int
) -> Tensor:
    """Bool ``[num_categories, num_parts]``: which global part ids each category has.

    Example:
        >>> category_part_mask([[0, 1], [2]], 3).tolist()
        [[True, True, False], [False, False, True]]
    """
    mask = torch.zeros(len(category_parts), num_parts, dtype=torch.bool)
    for c, parts in enumerate(category_parts):
        mask[c, list(parts)] = True
    return mask


#: ShapeNetPart's table as a mask, bool ``[16, 50]``
_SHAPENET_MASK = category_part_mask([SEG_CLASSES[c] for c in CATEGORIES], NUM_PARTS)


def shapenet_part_mask(category: Tensor) -> Tensor:
    r"""Which ShapeNetPart part labels each shape's category owns, bool :math:`(B, 50)`.

    Raises ``ValueError`` for a category outside ``0..15`` (reads the values on
    the host).

    Example:
        >>> shapenet_part_mask(torch.tensor([1]))[0].nonzero().flatten().tolist()
        [4, 5]
    """
    category = torch.as_tensor(category).long().flatten()
    if category.numel() and (int(category.min()) < 0
                              or int(category.max()) >= NUM_CATEGORIES):
        raise ValueError(f"category must be in [0, {NUM_CATEGORIES}), got values "
                         f"{sorted(set(category.tolist()))}")
    return _SHAPENET_MASK.to(category.device)[category]  # [B, 50]


def restrict_to_category(
    logits: Tensor,
    category: Tensor,
    batch: Tensor | None = None,
    part_mask: Tensor | None = None,
) -> Tensor:
    r"""Set the logits of parts outside each point's category to :math:`-\infty`.

    Args:
        logits: Per-point part logits :math:`(N, P)`.
        category: Category index of each shape :math:`(B)`.
        batch: Shape index of each point :math:`(N)`; ``None`` means one shape.
        part_mask: Bool :math:`(C, P)` from :func:`category_part_mask`; ``None``
            means ShapeNetPart's table (then :math:`P = 50` and the category and
            batch values are checked, which reads them on the host).

    Returns:
        Masked logits :math:`(N, P)`; their argmax is an allowed part.

    Shapes:
        logits [N, P], category [B], batch [N], part_mask [C, P] -> [N, P]

    Example:
        >>> z = torch.zeros(2, 50); z[:, 0] = 5.0
        >>> restrict_to_category(z, torch.tensor([15])).argmax(1).tolist()
        [47, 47]
        >>> m = category_part_mask([[0, 1], [2, 3]], 4)
        >>> z = torch.tensor([[0.0, 1, 5, 0], [9.0, 0, 1, 2]])
        >>> restrict_to_category(z, torch.tensor([0, 1]), torch.tensor([0, 1]),
        ...                      m).argmax(1).tolist()
        [1, 3]
    """
    batch = default_batch(batch, logits)
    if part_mask is None:
        if logits.dim() != 2 or logits.size(1) != NUM_PARTS:
            raise ValueError(f"logits must have shape [N, {NUM_PARTS}], got "
                             f"{list(logits.shape)}")
        mask = shapenet_part_mask(torch.as_tensor(category).to(logits.device))
        if batch.numel() and int(batch.max()) >= mask.size(0):
            raise ValueError(f"batch refers to shape {int(batch.max())} but category "
                             f"has {mask.size(0)} entries")
        allowed = mask[batch]  # [N, 50]
    else:
        if logits.dim() != 2 or logits.size(1) != part_mask.size(1):
            raise ValueError(f"logits must have shape [N, {part_mask.size(1)}] (the "
                             f"parts of part_mask), got {list(logits.shape)}")
        category = category.to(logits.device).long()
        allowed = part_mask.to(logits.device)[category[batch]]  # [N, P]
    return logits.masked_fill(~allowed, float("-inf"))  # [N, P]
