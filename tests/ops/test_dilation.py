"""ops.dilate (the one dilation rule) and ops.feature_knn against slow references."""

from __future__ import annotations

import pytest
import torch

from pointsam import ops
from tests.models._models_tiny import ragged
from tests.reference.ops import dilate_rows, feature_knn_sets


def test_dilate_matches_the_row_by_row_rule():
    g = torch.Generator().manual_seed(0)
    for k, d, width in [(3, 2, 6), (4, 3, 12), (1, 4, 4), (5, 1, 5), (2, 5, 10)]:
        n_valid = torch.randint(1, width + 1, (40,), generator=g)  # [M]
        table = torch.randint(0, 100, (40, width), generator=g)
        table[torch.arange(width) >= n_valid.unsqueeze(1)] = -1  # padding at the end
        idx, mask = ops.dilate(table, None, k, d)
        ref_idx, ref_mask = dilate_rows(table, k, d)
        assert idx.tolist() == ref_idx and mask.tolist() == ref_mask, (k, d)
        idx2, mask2 = ops.dilate(table.clamp(min=0), table >= 0, k, d)  # mask form
        assert torch.equal(idx2, idx) and torch.equal(mask2, mask)


def test_dilate_follows_ops_knn_on_small_clouds():
    # clouds with fewer than k*d points: DGCNN's dilation rule is ops.knn's
    g = torch.Generator().manual_seed(3)
    for n, k, d in [(10, 4, 3), (5, 3, 3), (4, 2, 3), (7, 4, 2), (2, 3, 2)]:
        pos = torch.randn(n, 3, generator=g)
        ref = ops.knn(pos, k, dilation=d)
        table = ops.knn(pos, k * d)[0]
        table = table.masked_fill(~ops.knn(pos, k * d)[1], -1)  # [n, k d]
        got = ops.dilate(table, None, k, d)
        assert torch.equal(got[1], ref[1]), (n, k, d)
        assert torch.equal(got[0][got[1]], ref[0][ref[1]]), (n, k, d)


def test_dilate_small_cloud():
    idx, mask = ops.dilate(torch.tensor([[4, 5, -1, -1]]), None, 3, 2)
    assert idx.tolist() == [[4, 5, 4]] and mask.tolist() == [[True, True, False]]


def test_dilate_random_keeps_the_nearest_and_valid_slots():
    g = torch.Generator().manual_seed(1)
    table = torch.arange(24).view(2, 12)
    table[1, 7:] = -1
    idx, mask = ops.dilate(table, None, 4, 3, random_dilation=True, generator=g)
    assert idx[:, 0].tolist() == [0, 12] and bool(mask.all())
    assert bool((idx[1] < 19).all())  # only the 7 valid candidates of row 1
    assert bool((idx.diff(dim=1) > 0).all())  # distance order kept


def test_dilate_bad_input():
    t = torch.zeros(3, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="fewer than k=5"):
        ops.dilate(t, None, 5)
    with pytest.raises(ValueError, match="int64"):
        ops.dilate(t.int(), None, 2)
    with pytest.raises(ValueError, match="nbr_mask must be a bool"):
        ops.dilate(t, t, 2)
    with pytest.raises(ValueError, match="dilation must be"):
        ops.dilate(t, None, 2, 0)


def test_feature_knn_matches_brute_force_and_chunks():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(43, 7, generator=g)
    batch = torch.tensor([0] * 3 + [1] * 25 + [2] * 15)
    ref = feature_knn_sets(x, 5, batch)
    for block in (1 << 24, 30, 1):  # whole batch, row chunks, one row at a time
        idx, mask = ops.feature_knn(x, 5, batch, block=block)
        got = [set(r[m].tolist()) for r, m in zip(idx, mask)]
        assert got == ref
        assert (idx[:, 0] == torch.arange(43)).all()  # self first
        assert (batch[idx] == batch.unsqueeze(1)).all()  # never another cloud
    assert mask[:3].sum(1).tolist() == [3, 3, 3]  # a 3-point cloud


def test_feature_knn_dilation_matches_brute_force():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(30, 5, generator=g)
    batch = torch.tensor([0] * 12 + [1] * 18)
    idx, mask = ops.feature_knn(x, 3, batch, dilation=2)
    xd = x.double()
    for i in range(30):  # the 6 nearest, in order, then every second
        same = torch.nonzero(batch == batch[i]).flatten()
        order = same[((xd[same] - xd[i]) ** 2).sum(-1).argsort(stable=True)]
        assert idx[i].tolist() == order[:6:2].tolist() and bool(mask[i].all())


def test_feature_knn_dilation_matches_ops_knn_on_coordinates():
    pos, batch = ragged((30, 40))
    a, am = ops.feature_knn(pos, 4, batch, dilation=3)
    b, bm = ops.knn(pos, 4, batch, dilation=3, backend="chunked")
    assert torch.equal(am, bm) and torch.equal(a, b)


def test_feature_knn_bad_input():
    with pytest.raises(ValueError, match="x is empty"):
        ops.feature_knn(torch.zeros(0, 3), 2)
    with pytest.raises(ValueError, match="sorted"):
        ops.feature_knn(torch.randn(4, 3), 2, torch.tensor([1, 1, 0, 0]))
