"""One __getitem__ for every dataset: range check, negative indices, transform."""

import pytest
import torch

from pointsam import data as D
from pointsam.data import PointDataset

CLASSES = [D.ModelNet, D.ShapeNetPart, D.SemanticKITTI, D.SyntheticShapes,
           D.SyntheticParts, D.SyntheticLidar]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_dataset_uses_the_base_getitem(cls):
    assert issubclass(cls, PointDataset) and issubclass(cls, torch.utils.data.Dataset)
    assert "__getitem__" not in vars(cls) and "get" in vars(cls)


def test_indexing_and_transform():
    ds = D.SyntheticShapes(num_samples=3, num_points=16)
    assert torch.equal(ds[-1].pos, ds[2].pos) and ds[-3].y.tolist() == [0]
    with pytest.raises(IndexError, match="index 3 out of range for 3 samples"):
        ds[3]
    with pytest.raises(IndexError, match="index -4 out of range for 3 samples"):
        ds[-4]
    shifted = D.SyntheticShapes(num_samples=3, num_points=16,
                                transform=D.RandomShift(0.0))
    assert torch.equal(shifted[1].pos, ds[1].pos)

    class Doubled(PointDataset):
        item_name = "clouds"

        def __init__(self):
            self.base, self.transform = ds, lambda d: d.update({"pos": 2 * d.pos})

        def __len__(self):
            return 2

        def get(self, idx):
            return self.base.get(idx)

    assert torch.equal(Doubled()[1].pos, 2 * ds[1].pos)
    with pytest.raises(IndexError, match="index 2 out of range for 2 clouds"):
        Doubled()[2]
