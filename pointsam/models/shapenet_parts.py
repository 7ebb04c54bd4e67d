r"""ShapeNetPart's 16 categories and 50 parts, and the per-category restriction.

The standard mapping of the PointNet++ / DGCNN evaluation code (``seg_classes``):
category ``c`` (index in the alphabetical order of ``synsetoffset2category.txt``,
which is also PyG ``ShapeNet``'s order) owns a contiguous range of the 50 global
part labels. At evaluation a point's prediction is restricted to its shape's
category: :math:`\hat y_i = \arg\max_{l \in \mathcal{P}(c_b)} z_{il}` for the
point i of shape b.

This module imports only torch, so both :mod:`pointsam.models` and
:mod:`pointsam.data` can use it without import cycles.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["CATEGORIES", "SYNSETS", "SEG_CLASSES", "NUM_CATEGORIES", "NUM_PARTS",
           "PART_TO_CATEGORY", "part_mask", "restrict_to_category",
           "predict_parts"]

#: the 16 category names, in index order
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
#: category name -> its global part labels
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


def part_mask(category: Tensor, num_parts: int = NUM_PARTS) -> Tensor:
    r"""Which part labels each shape's category owns, bool :math:`(B, 50)`.

    Example:
        >>> part_mask(torch.tensor([1]))[0].nonzero().flatten().tolist()
        [4, 5]
    """
    category = torch.as_tensor(category).long().flatten()
    if category.numel() and (int(category.min()) < 0
                              or int(category.max()) >= NUM_CATEGORIES):
        raise ValueError(f"category must be in [0, {NUM_CATEGORIES}), got values "
                         f"{sorted(set(category.tolist()))}")
    owner = torch.tensor(PART_TO_CATEGORY, device=category.device)  # [50]
    if num_parts != NUM_PARTS:
        raise ValueError(f"ShapeNetPart has {NUM_PARTS} parts, got {num_parts}")
    return owner.unsqueeze(0) == category.unsqueeze(1)  # [B, 50]


def restrict_to_category(logits: Tensor, category: Tensor,
                         batch: Tensor | None = None) -> Tensor:
    r"""Set the logits of parts outside each point's category to :math:`-\infty`.

    Args:
        logits: Part logits :math:`(N, 50)`.
        category: Category index per shape :math:`(B)`.
        batch: Shape index per point :math:`(N)`; ``None`` means one shape.

    Example:
        >>> z = torch.zeros(2, 50); z[:, 0] = 5.0
        >>> restrict_to_category(z, torch.tensor([15])).argmax(1).tolist()
        [47, 47]
    """
    if logits.dim() != 2 or logits.size(1) != NUM_PARTS:
        raise ValueError(f"logits must have shape [N, {NUM_PARTS}], got "
                         f"{list(logits.shape)}")
    if batch is None:
        batch = torch.zeros(logits.size(0), dtype=torch.long, device=logits.device)
    mask = part_mask(category.to(logits.device))  # [B, 50]
    if batch.numel() and int(batch.max()) >= mask.size(0):
        raise ValueError(f"batch refers to shape {int(batch.max())} but category "
                         f"has {mask.size(0)} entries")
    return logits.masked_fill(~mask[batch], float("-inf"))  # [N, 50]


def predict_parts(logits: Tensor, category: Tensor,
                  batch: Tensor | None = None) -> Tensor:
    r"""Part label per point, restricted to its shape's category, int64 :math:`(N)`.

    Example:
        >>> predict_parts(torch.randn(4, 50), torch.tensor([9])).tolist() in (
        ...     [[a, b, c, d] for a in (28, 29) for b in (28, 29) for c in (28, 29)
        ...      for d in (28, 29)])
        True
    """
    return restrict_to_category(logits, category, batch).argmax(dim=1)
