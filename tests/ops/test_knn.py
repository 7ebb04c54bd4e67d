import pytest
import torch

from pointsam.ops import available_knn_backends, knn, radius
from tests.reference.ops import knn_sets

BACKENDS = available_knn_backends()


def ragged(sizes, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(sum(sizes), 3, generator=g) * scale
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return pos, batch


def check_against_reference(pos, batch, idx, mask, k, query=None, query_batch=None,
                            scale=None):
    q = pos if query is None else query
    qb = batch if query is None else query_batch
    ref = knn_sets(pos, k, batch, query, query_batch, scale=scale)
    p, qq = pos.double(), q.double()
    if scale is not None:
        p, qq = p * scale.double(), qq * scale.double()
    for i in range(q.size(0)):
        got = idx[i][mask[i]]
        assert len(set(got.tolist())) == got.numel(), "duplicate neighbours"
        assert bool((batch[got] == qb[i]).all()), "neighbour from another cloud"
        d = ((p[got] - qq[i]) ** 2).sum(-1)
        assert got.numel() == ref[i].numel()
        torch.testing.assert_close(d, ref[i], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_matches_reference_ragged(backend):
    pos, batch = ragged([40, 3, 25, 1, 60])
    idx, mask = knn(pos, 8, batch, backend=backend)
    assert idx.shape == (pos.size(0), 8) and idx.dtype == torch.long
    assert mask.shape == idx.shape and mask.dtype == torch.bool
    check_against_reference(pos, batch, idx, mask, 8)
    # small clouds: real neighbours then masked padding repeating the nearest
    assert mask[40:43].sum(1).tolist() == [3, 3, 3]
    assert bool((idx[40:43, 3:] == idx[40:43, :1]).all())
    assert mask[68].tolist() == [True] + [False] * 7


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_self_first_and_sorted(backend):
    pos, batch = ragged([50, 70], seed=1)
    idx, _ = knn(pos, 6, batch, backend=backend)
    assert torch.equal(idx[:, 0], torch.arange(pos.size(0)))
    d = ((pos.unsqueeze(1) - pos[idx]) ** 2).sum(-1)
    assert bool((d[:, 1:] >= d[:, :-1] - 1e-6).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_bipartite_query(backend):
    pos, batch = ragged([30, 20], seed=2)
    query, qb = ragged([5, 7], seed=3)
    idx, mask = knn(pos, 4, batch, query=query, query_batch=qb, backend=backend)
    assert idx.shape == (12, 4)
    check_against_reference(pos, batch, idx, mask, 4, query, qb)


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_duplicates_and_ties(backend):
    # a lattice has many equal distances; duplicates have distance 0
    g = torch.stack(torch.meshgrid(*[torch.arange(4.0)] * 3, indexing="ij"), -1)
    pos = torch.cat([g.reshape(-1, 3), g.reshape(-1, 3)[:5]])
    batch = torch.zeros(pos.size(0), dtype=torch.long)
    idx, mask = knn(pos, 7, batch, backend=backend)
    check_against_reference(pos, batch, idx, mask, 7)


def test_knn_large_coordinates_far_from_origin():
    # LiDAR-like offsets: distances must stay exact enough to rank neighbours
    pos, batch = ragged([300, 200], seed=4)
    pos = pos * 0.5 + torch.tensor([6.4e4, -3.2e4, 100.0])
    for backend in BACKENDS:
        idx, mask = knn(pos, 5, batch, backend=backend)
        assert torch.equal(idx[:, 0], torch.arange(pos.size(0))), backend


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_tight_clusters_spread_wide(backend):
    # millimetre clusters scattered over +-50 m (a LiDAR sweep): the neighbour
    # sets must be the exact ones, not an artefact of |q|^2 + |p|^2 - 2 q.p
    g = torch.Generator().manual_seed(11)
    centres = (torch.rand(25, 3, generator=g) - 0.5) * 100.0  # [25, 3]
    pos = (centres.repeat_interleave(8, 0)
           + torch.randn(200, 3, generator=g) * 1e-3)  # [200, 3]
    batch = torch.zeros(200, dtype=torch.long)
    idx, mask = knn(pos, 6, batch, backend=backend)
    check_against_reference(pos, batch, idx, mask, 6)
    assert torch.equal(idx[:, 0], torch.arange(200))
    assert bool((idx // 8 == torch.arange(200).unsqueeze(1) // 8).all())


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_self_first_among_many_duplicates(backend):
    # 12 copies of one point, k = 4: every copy still lists itself first
    pos = torch.cat([torch.ones(12, 3), torch.randn(20, 3) * 5 + 20])
    idx, mask = knn(pos, 4, torch.zeros(32, dtype=torch.long), backend=backend)
    assert torch.equal(idx[:, 0], torch.arange(32)) and mask.all()
    assert bool((idx[:12] < 12).all())  # the other slots hold twins
    assert all(len(set(r)) == 4 for r in idx.tolist())


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_float64_far_from_origin(backend):
    # UTM-like float64 coordinates: float32 cannot hold 5 cm at 8.5e5 m, so the
    # CPU tree backends centre each cloud in float64 before they cast
    g = torch.Generator().manual_seed(13)
    pos = torch.tensor([637000.0, 851000.0, 500.0], dtype=torch.float64) \
        + torch.rand(600, 3, generator=g, dtype=torch.float64) * 0.05
    batch = torch.tensor([0] * 250 + [1] * 350)
    idx, mask = knn(pos, 8, batch, backend=backend)
    check_against_reference(pos, batch, idx, mask, 8)


def test_knn_batch_size_checked():
    pos, batch = ragged([5, 6, 7], seed=12)
    with pytest.raises(ValueError, match="batch_size"):
        knn(pos, 2, batch, batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        knn(pos, 2, batch, batch_size=0)
    a, _ = knn(pos, 2, batch, batch_size=5)  # trailing empty clouds are fine
    assert torch.equal(a, knn(pos, 2, batch)[0])


def test_knn_per_cloud_isolation():
    pos, batch = ragged([30, 40, 25], seed=5)
    idx, _ = knn(pos, 6, batch)
    pos2 = pos.clone()
    pos2[30:70] = torch.randn(40, 3) * 10  # change cloud 1 only
    idx2, _ = knn(pos2, 6, batch)
    assert torch.equal(idx[:30], idx2[:30]) and torch.equal(idx[70:], idx2[70:])
    alone, _ = knn(pos[70:], 6)
    assert torch.equal(idx[70:] - 70, alone)


def test_knn_permutation_equivariance():
    pos, batch = ragged([35, 45], seed=6)
    perm = torch.cat([torch.randperm(35), 35 + torch.randperm(45)])
    inv = torch.argsort(perm)
    idx, _ = knn(pos, 5, batch)
    idx_p, _ = knn(pos[perm], 5, batch)
    # neighbour j of permuted point i is perm[...]; map back to original ids
    assert torch.equal(perm[idx_p][inv].sort(1).values, idx.sort(1).values)


def test_dilation_hand_computed():
    pos = torch.tensor([[float(i), 0.0, 0.0] for i in range(10)])
    idx, mask = knn(pos, 3, dilation=2)
    assert idx[0].tolist() == [0, 2, 4]  # 6 nearest are 0..5; keep every 2nd
    assert mask.all()
    idx, _ = knn(pos, 3, dilation=3)
    assert idx[0].tolist() == [0, 3, 6]
    # a small cloud takes the largest stride <= d whose k-th pick still exists:
    # 4 points, k=2, d=3: candidates 0..3, stride (4 - 1) // (2 - 1) = 3
    idx, mask = knn(pos[:4], 2, dilation=3)
    assert idx[0].tolist() == [0, 3] and mask.all()
    # 5 points, k=3, d=3: stride (5 - 1) // (3 - 1) = 2 -> slots 0, 2, 4
    idx, mask = knn(pos[:5], 3, dilation=3)
    assert idx[0].tolist() == [0, 2, 4] and mask.all()
    # fewer points than k: every real neighbour once, then masked padding
    idx, mask = knn(pos[:2], 3, dilation=2)
    assert idx[0].tolist() == [0, 1, 0] and mask[0].tolist() == [True, True, False]


def test_random_dilation_keeps_nearest_and_candidates():
    pos = torch.tensor([[float(i), 0.0, 0.0] for i in range(20)])
    g = torch.Generator().manual_seed(0)
    idx, mask = knn(pos, 4, dilation=3, random_dilation=True, generator=g)
    assert torch.equal(idx[:, 0], torch.arange(20))
    cand, _ = knn(pos, 12)
    for i in range(20):
        assert set(idx[i].tolist()) <= set(cand[i].tolist())
        assert len(set(idx[i].tolist())) == 4


def test_scale_hand_computed():
    # along x the neighbour at 2 is nearer than the one at 1 along y when y is
    # stretched by 4: d^2 = 4 vs 16
    pos = torch.tensor([[0.0, 0, 0], [2.0, 0, 0], [0.0, 1, 0]])
    idx, _ = knn(pos, 2, scale=(1.0, 4.0, 4.0))
    assert idx[0].tolist() == [0, 1]
    idx, _ = knn(pos, 2)
    assert idx[0].tolist() == [0, 2]
    for backend in BACKENDS:
        p, b = ragged([40], seed=7)
        s = torch.tensor([1.0, 3.0, 0.5])
        i, m = knn(p, 6, b, scale=s, backend=backend)
        check_against_reference(p, b, i, m, 6, scale=s)


def test_radius_masks_far_points():
    pos, batch = ragged([50, 30], seed=8)
    idx, mask = radius(pos, 0.8, batch, max_num_neighbors=10)
    d = (pos.unsqueeze(1) - pos[idx]).norm(dim=-1)
    assert bool((d[mask] <= 0.8 + 1e-6).all())
    full, fmask = knn(pos, 10, batch)
    df = (pos.unsqueeze(1) - pos[full]).norm(dim=-1)
    assert torch.equal(mask.sum(1), (fmask & (df <= 0.8)).sum(1))
    assert bool((idx[~mask] == idx[:, :1].expand_as(idx)[~mask]).all())


def test_radius_float64_boundary_and_arguments():
    # float64 input: the ball test is exact, a point at distance r is inside
    pos = torch.tensor([[0.0, 0, 0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    r = float((pos[1] - pos[0]).norm())
    _, mask = radius(pos, r, max_num_neighbors=2)
    assert mask.tolist() == [[True, True], [True, True]]
    pos = torch.tensor([[0.0, 0, 0], [0.5 - 1e-9, 0, 0]], dtype=torch.float64)
    _, mask = radius(pos, 0.5 - 2e-9, max_num_neighbors=2)
    assert mask.tolist() == [[True, False], [True, False]]
    for bad in (0, True, 2.0):
        with pytest.raises(ValueError, match="max_num_neighbors"):
            radius(pos, 1.0, max_num_neighbors=bad)


def test_half_precision_input():
    pos, batch = ragged([20, 30], seed=9)
    a, _ = knn(pos.half(), 4, batch)
    assert a.shape == (50, 4)
    assert torch.equal(a[:, 0], torch.arange(50))


@pytest.mark.parametrize("bad, match", [
    (dict(pos=torch.tensor([[0.0, float("nan"), 0]] * 3)), "NaN or Inf"),
    (dict(pos=torch.zeros(5, 2)), r"shape \[N, 3\]"),
    (dict(pos=torch.zeros(5, 3, dtype=torch.long)), "floating-point"),
    (dict(pos=torch.zeros(0, 3)), "empty"),
    (dict(k=0), "k must be"),
    (dict(dilation=0), "dilation must be"),
    (dict(batch=torch.tensor([1, 0, 0, 0, 0])), "sorted"),
    (dict(batch=torch.tensor([0, 0, 0])), "entries"),
    (dict(batch=torch.zeros(5, dtype=torch.int32)), "int64"),
    (dict(scale=(1.0, -1.0, 1.0)), "scale"),
    (dict(backend="nope"), "unknown knn backend"),
])
def test_bad_input(bad, match):
    args = dict(pos=torch.randn(5, 3), k=2, batch=None)
    args.update(bad)
    pos, k, batch = args.pop("pos"), args.pop("k"), args.pop("batch")
    with pytest.raises(ValueError, match=match):
        knn(pos, k, batch, **args)


def test_query_without_points_in_its_cloud():
    pos = torch.randn(4, 3)
    with pytest.raises(ValueError, match="no points in pos"):
        knn(pos, 2, torch.zeros(4, dtype=torch.long), query=torch.randn(2, 3),
            query_batch=torch.tensor([0, 1]))


def test_forced_backend_not_installed():
    if "cluster" in BACKENDS:
        pytest.skip("torch-cluster is installed here")
    with pytest.raises(ValueError, match="not installed"):
        knn(torch.randn(5, 3), 2, backend="cluster")


@pytest.mark.parametrize("backend", ["auto", "dense", "chunked"])
def test_torch_backends_on_device(device, backend):
    pos, batch = ragged([300, 40, 5], seed=10)
    idx, mask = knn(pos.to(device), 8, batch.to(device), backend=backend)
    assert idx.device.type == device.type
    check_against_reference(pos, batch, idx.cpu(), mask.cpu(), 8)


@pytest.mark.parametrize("k", [8, 60])
def test_knn_dense_one_cloud_equals_padded_batch(k, monkeypatch):
    # one cloud skips the padding; it must give what the padded path gives for
    # the same cloud inside a batch of two (k=60 > 50 points: -1 padding)
    import sys

    monkeypatch.setattr(sys.modules["pointsam.ops.knn"], "_BLOCK", 500)  # blocks
    pos, _ = ragged([50], seed=4)
    query, _ = ragged([70], seed=5)
    one_b, one_q = torch.zeros(50, dtype=torch.long), torch.zeros(70, dtype=torch.long)
    idx, mask = knn(pos, k, one_b, query=query, query_batch=one_q, backend="dense")
    check_against_reference(pos, one_b, idx, mask, k, query, one_q)
    other, _ = ragged([9], seed=6)
    two = torch.cat([pos, other])
    two_b = torch.cat([one_b, torch.ones(9, dtype=torch.long)])
    two_q = torch.cat([query, other])
    two_qb = torch.cat([one_q, torch.ones(9, dtype=torch.long)])
    idx2, mask2 = knn(two, k, two_b, query=two_q, query_batch=two_qb, backend="dense")
    assert torch.equal(idx, idx2[:70]) and torch.equal(mask, mask2[:70])
