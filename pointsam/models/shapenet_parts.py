r"""ShapeNetPart's 16 categories and 50 parts, for the models layer.

The table and the restriction rule live in :mod:`pointsam.ops.parts` (the one
layer below both models and :mod:`pointsam.data`, which share them); this module
re-exports them and adds the two ShapeNetPart conveniences of the models:
:func:`part_mask` and :func:`predict_parts`, the restricted argmax
:math:`\hat y_i = \arg\max_{l \in \mathcal{P}(c_b)} z_{il}` for the point i of
shape b.
"""

from __future__ import annotations

from torch import Tensor

from pointsam.ops.parts import (
    CATEGORIES,
    NUM_CATEGORIES,
    NUM_PARTS,
    PART_TO_CATEGORY,
    SEG_CLASSES,
    SYNSETS,
    restrict_to_category,
    shapenet_part_mask,
)

__all__ = ["CATEGORIES", "SYNSETS", "SEG_CLASSES", "NUM_CATEGORIES", "NUM_PARTS",
           "PART_TO_CATEGORY", "part_mask", "restrict_to_category",
           "predict_parts"]


def part_mask(category: Tensor, num_parts: int = NUM_PARTS) -> Tensor:
    r"""Which part labels each shape's category owns, bool :math:`(B, 50)`.

    Example:
        >>> import torch
        >>> part_mask(torch.tensor([1]))[0].nonzero().flatten().tolist()
        [4, 5]
    """
    mask = shapenet_part_mask(category)  # [B, 50]
    if num_parts != NUM_PARTS:
        raise ValueError(f"ShapeNetPart has {NUM_PARTS} parts, got {num_parts}")
    return mask


def predict_parts(logits: Tensor, category: Tensor,
                  batch: Tensor | None = None) -> Tensor:
    r"""Part label per point, restricted to its shape's category, int64 :math:`(N)`.

    Example:
        >>> import torch
        >>> predict_parts(torch.randn(4, 50), torch.tensor([9])).tolist() in (
        ...     [[a, b, c, d] for a in (28, 29) for b in (28, 29) for c in (28, 29)
        ...      for d in (28, 29)])
        True
    """
    return restrict_to_category(logits, category, batch).argmax(dim=1)
