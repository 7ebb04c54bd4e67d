"""Class counts of a carved split (the loss weights of optim.class_weights)."""

import torch
from torch_geometric.data import Data

from pointsam.engine.builders import TransformedDataset


class _Seq:
    """Three multi-scan samples: frame 0 holds labels 0/1, the past scans 2."""

    num_classes = 3

    def __len__(self):
        return 3

    def __getitem__(self, i):
        y = torch.tensor([i % 2, 1, -1, 2, 2])
        return Data(pos=torch.zeros(5, 3), y=y, frame=torch.tensor([0, 0, 0, 1, 2]))

    def class_counts(self):
        return None  # does not count without reading


def test_a_carved_split_counts_its_own_items_newest_scan_only():
    ds = TransformedDataset(_Seq(), [0, 2])
    # items 0 and 2: labels [0, 1, -1] each on frame 0; the past scans' 2s and
    # the unlabelled -1 are not scored, so not counted
    assert ds.class_counts().tolist() == [2, 2, 0]
    assert TransformedDataset(_Seq(), [1]).class_counts().tolist() == [0, 2, 0]


def test_the_base_count_is_used_for_every_item():
    class Counted(_Seq):
        def class_counts(self):
            return torch.tensor([7, 8, 9])

    assert TransformedDataset(Counted()).class_counts().tolist() == [7, 8, 9]
    assert TransformedDataset(Counted(), [0]).class_counts().tolist() == [1, 1, 0]
