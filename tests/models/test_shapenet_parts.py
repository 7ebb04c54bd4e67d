"""The ShapeNetPart category/part table against the real sample files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointsam.models.shapenet_parts import (
    CATEGORIES,
    NUM_PARTS,
    SEG_CLASSES,
    SYNSETS,
    part_mask,
    predict_parts,
    restrict_to_category,
)

ROOT = "shapenetcore_partanno_segmentation_benchmark_v0_normal"


def test_table_is_a_partition():
    parts = sorted(p for v in SEG_CLASSES.values() for p in v)
    assert parts == list(range(50)) and NUM_PARTS == 50
    assert list(SEG_CLASSES) == sorted(SEG_CLASSES) == list(CATEGORIES)


@pytest.mark.dataset
def test_against_real_files(shared_data):
    root = shared_data / ROOT
    lines = (root / "synsetoffset2category.txt").read_text().split("\n")
    official = [tuple(line.split()) for line in lines if line.strip()]
    assert [n for n, _ in official] == list(CATEGORIES)
    assert dict(official) == SYNSETS
    names = {v: k for k, v in SYNSETS.items()}
    files = sorted(root.glob("*/*.txt"))
    assert len(files) == 4
    for f in files:
        labels = np.loadtxt(f)[:, 6].astype(int)
        cat = names[f.parent.name]
        assert set(labels.tolist()) <= set(SEG_CLASSES[cat])
        c = CATEGORIES.index(cat)
        logits = torch.randn(len(labels), 50)
        pred = predict_parts(logits, torch.tensor([c]))
        assert set(pred.tolist()) <= set(SEG_CLASSES[cat])


def test_restrict_per_shape():
    logits = torch.zeros(5, 50)
    logits[:, 0] = 10.0  # Airplane part 0 wins unrestricted
    batch = torch.tensor([0, 0, 1, 1, 1])
    pred = predict_parts(logits, torch.tensor([0, 11]), batch)
    assert pred.tolist()[:2] == [0, 0]
    assert set(pred.tolist()[2:]) <= {36, 37}
    r = restrict_to_category(logits, torch.tensor([0, 11]), batch)
    assert torch.isinf(r[2:, 0]).all() and torch.isfinite(r[2:, 36]).all()
    assert part_mask(torch.tensor([3])).sum() == 4
    with pytest.raises(ValueError, match="category must be in"):
        part_mask(torch.tensor([16]))


def test_one_table_and_one_function():
    from pointsam import data
    from pointsam.engine import metrics
    from pointsam.models import shapenet_parts
    from pointsam.ops import parts

    assert data.SEG_CLASSES is parts.SEG_CLASSES is shapenet_parts.SEG_CLASSES
    assert data.ShapeNetPart.seg_classes is parts.SEG_CLASSES
    assert shapenet_parts.CATEGORIES is parts.CATEGORIES
    assert (metrics.restrict_to_category is shapenet_parts.restrict_to_category
            is parts.restrict_to_category)
    assert metrics.category_part_mask is parts.category_part_mask


def test_restrict_with_a_table_of_its_own():
    from pointsam.ops.parts import category_part_mask

    mask = category_part_mask([[0, 1], [2, 3, 4]], 5)
    logits = torch.tensor([[0.0, 1, 5, 0, 0], [9.0, 0, 1, 2, 0], [0.0, 0, 0, 0, 7]])
    out = restrict_to_category(logits, torch.tensor([0, 1]),
                               torch.tensor([0, 1, 1]), mask)
    assert out.argmax(-1).tolist() == [1, 3, 4]
    assert torch.isinf(out[0, 2:]).all() and torch.isinf(out[1, :2]).all()
    # the ShapeNetPart table spelled as a mask gives the default's answer
    table = category_part_mask([SEG_CLASSES[c] for c in CATEGORIES], NUM_PARTS)
    z, cat, b = torch.randn(6, 50), torch.tensor([3, 12]), torch.tensor([0, 0, 0, 1, 1, 1])
    assert torch.equal(restrict_to_category(z, cat, b, table),
                       restrict_to_category(z, cat, b))
    with pytest.raises(ValueError, match=r"logits must have shape \[N, 5\]"):
        restrict_to_category(torch.zeros(3, 4), torch.tensor([0]), None, mask)
    with pytest.raises(ValueError, match=r"logits must have shape \[N, 50\]"):
        restrict_to_category(torch.zeros(3, 4), torch.tensor([0]))
    with pytest.raises(ValueError, match="batch refers to shape 1 but category has 1"):
        restrict_to_category(torch.zeros(2, 50), torch.tensor([0]), torch.tensor([0, 1]))
