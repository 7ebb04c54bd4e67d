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
