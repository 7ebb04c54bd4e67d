import pytest
import torch

from pointsam.ops import (
    batch_to_ptr,
    from_dense,
    grid_subsample,
    hdc_rates,
    ptr_to_batch,
    segment_max,
    segment_mean,
    segment_softmax,
    segment_sum,
    to_dense,
)


def test_grid_subsample_hand_computed_and_per_cloud():
    pos = torch.tensor([[0.1, 0.1, 0.1], [0.2, 0.3, 0.1], [1.5, 0.1, 0.1],
                        [5.0, 5.0, 5.0], [5.1, 5.1, 5.1]])
    batch = torch.tensor([0, 0, 0, 1, 1])
    g = grid_subsample(pos, 1.0, batch)
    assert g.batch.tolist() == [0, 0, 1]
    assert g.cluster.tolist() == [0, 0, 1, 2, 2]
    torch.testing.assert_close(g.pos[0], torch.tensor([0.15, 0.2, 0.1]))
    assert g.index.tolist() == [0, 2, 3]
    first = grid_subsample(pos, 1.0, batch, mode="first")
    assert torch.equal(first.pos, pos[first.index])


def test_grid_translation_invariant():
    pos = torch.rand(200, 3) * 5
    a = grid_subsample(pos, 0.7)
    b = grid_subsample(pos + torch.tensor([100.0, -7.0, 3.0]), 0.7)
    assert torch.equal(a.cluster, b.cluster)


def test_grid_bad_input():
    with pytest.raises(ValueError, match="size"):
        grid_subsample(torch.rand(5, 3), 0.0)
    with pytest.raises(ValueError, match="mode"):
        grid_subsample(torch.rand(5, 3), 1.0, mode="median")


def test_segment_ops_against_loops():
    src = torch.randn(10, 4, dtype=torch.float64)
    index = torch.tensor([0, 0, 1, 1, 1, 3, 3, 3, 3, 3])
    for fn, red in [(segment_sum, torch.sum), (segment_mean, torch.mean),
                    (segment_max, lambda t, dim: t.max(dim).values)]:
        out = fn(src, index, 4)
        for s in (0, 1, 3):
            torch.testing.assert_close(out[s], red(src[index == s], dim=0))
        assert bool((out[2] == 0).all())  # empty segment
    sm = segment_softmax(src, index, 4)
    for s in (0, 1, 3):
        torch.testing.assert_close(sm[index == s], src[index == s].softmax(0))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_segment_ops_half_precision_large_segments(dtype):
    # 120k rows of ~5: a float16 sum (6e5) and count (1.2e5) overflow 65504
    g = torch.Generator().manual_seed(3)
    src = torch.rand(120_000, 4, generator=g) * 2 + 4  # [N, 4] in [4, 6]
    index = torch.cat([torch.zeros(100_000), torch.ones(20_000)]).long()
    mean = segment_mean(src.to(dtype), index, 2)
    assert mean.dtype == dtype and bool(torch.isfinite(mean).all())
    torch.testing.assert_close(mean.float(), segment_mean(src, index, 2),
                               rtol=1e-2, atol=0.0)
    sm = segment_softmax(src[:, 0].to(dtype), index, 2)
    assert sm.dtype == dtype and bool(torch.isfinite(sm).all())
    totals = segment_sum(sm.float(), index, 2)
    torch.testing.assert_close(totals, torch.ones(2), rtol=2e-2, atol=0.0)


def test_segment_softmax_gradcheck():
    src = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 0, 1, 1, 1, 2])
    assert torch.autograd.gradcheck(lambda s: segment_softmax(s, index, 3), (src,))


def test_ptr_dense_round_trip():
    batch = torch.tensor([0, 0, 1, 1, 1, 3])
    ptr = batch_to_ptr(batch)
    assert ptr.tolist() == [0, 2, 5, 5, 6]
    assert torch.equal(ptr_to_batch(ptr), batch)
    x = torch.randn(6, 5)
    d, m = to_dense(x, batch)
    assert d.shape == (4, 3, 5) and m.sum().item() == 6
    assert torch.equal(from_dense(d, m), x)


def test_hdc_rates():
    assert hdc_rates(5, (1, 2, 5)) == [1, 2, 5, 1, 2]
    assert hdc_rates(2, (1, 2, 5)) == [1, 2]
    with pytest.raises(ValueError, match="gridding"):
        hdc_rates(3, (2, 4))
    with pytest.raises(ValueError, match="gridding"):
        hdc_rates(2, (2, 4, 1))  # the layers used, [2, 4], share 2
    with pytest.raises(ValueError, match="positive"):
        hdc_rates(3, (1, 0))
    # the paper's M_2 <= K rule (K = 3): (1, 2, 9) and (4, 6, 9) leave holes
    for bad in ((1, 2, 9), (4, 6, 9)):
        with pytest.raises(ValueError, match="M_2"):
            hdc_rates(3, bad)
    for depth in (True, 2.0, 0):
        with pytest.raises(ValueError, match="depth"):
            hdc_rates(depth)


def test_hdc_rates_cover_every_offset():
    # the property HDC promises: stacked 3-tap layers with rates (1, 2, 5) reach
    # every offset in [-8, 8], a shared factor (2, 4) only the even ones
    def reach(rates):
        offs = {0}
        for r in rates:
            offs = {o + t * r for o in offs for t in (-1, 0, 1)}
        return offs
    assert reach(hdc_rates(3, (1, 2, 5))) == set(range(-8, 9))
    assert reach([2, 4]) == set(range(-6, 7, 2))


def test_segment_and_dense_validation():
    x = torch.arange(7.0).view(7, 1)
    with pytest.raises(ValueError, match="sorted"):
        to_dense(x, torch.tensor([1, 0, 1, 1, 1, 3, 3]))
    for bad in (0, -1, True):
        with pytest.raises(ValueError, match="max_num_points"):
            to_dense(x, torch.zeros(7, dtype=torch.long), max_num_points=bad)
    with pytest.raises(ValueError, match="num_segments=2 but index holds segment 5"):
        segment_sum(x, torch.tensor([0, 0, 1, 1, 5, 5, 5]), 2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_grid_keys_exact_in_half_precision(dtype):
    g = torch.Generator().manual_seed(2)
    pos = (torch.rand(5000, 3, generator=g) - 0.5) * 60  # +-30 m
    pos = pos.to(dtype)
    ref = grid_subsample(pos.double(), 0.5, mode="first")
    got = grid_subsample(pos, 0.5, mode="first", batch_size=1)
    assert torch.equal(got.cluster, ref.cluster) and torch.equal(got.index, ref.index)
    for bad in (float("inf"), True, 0.0):
        with pytest.raises(ValueError, match="size"):
            grid_subsample(pos, bad)


@pytest.mark.parametrize("size", [0.05, 0.5, 1e-9])
def test_grid_voxels_equal_point_by_point_reference(size):
    # 1e-9 m voxels over a 10 m cloud: more cells than one int64 key holds, so
    # the row-wise unique fallback runs; the others take the packed 1-D key
    from tests.reference.ops import grid_naive

    g = torch.Generator().manual_seed(5)
    pos = torch.rand(300, 3, generator=g, dtype=torch.float64) * 10 - 5
    pos[100:110] = pos[100]  # duplicates: one voxel
    batch = torch.tensor([0] * 120 + [1] * 40 + [3] * 140)  # cloud 2 is empty
    out = grid_subsample(pos, size, batch, batch_size=4)
    cluster, cloud = grid_naive(pos, size, batch)
    assert out.cluster.tolist() == cluster
    assert out.batch.tolist() == cloud
    first = torch.full((len(cloud),), 10**9)
    for i, c in enumerate(cluster):
        first[c] = min(int(first[c]), i)
    assert out.index.tolist() == first.tolist()
