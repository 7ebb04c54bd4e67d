import pytest
import torch

from pointsam.ops import available_fps_backends, canonical_start, fps
from tests.reference.ops import fps_min_dist, fps_naive

BACKENDS = available_fps_backends()


def ragged(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(sum(sizes), 3, generator=g)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return pos, batch


def test_torch_backend_equals_textbook_fps():
    pos, batch = ragged([50, 80], seed=1)
    idx = fps(pos, batch, num=10, backend="torch")
    start = canonical_start(pos, batch, 2)
    assert idx[:10].tolist() == fps_naive(pos[:50], 10, int(start[0]))
    assert (idx[10:] - 50).tolist() == fps_naive(pos[50:], 10, int(start[1]))


def test_canonical_start_is_farthest_from_centroid():
    pos, batch = ragged([40], seed=2)
    d = (pos - pos.mean(0)).norm(dim=1)
    assert int(canonical_start(pos, batch, 1)[0]) == int(d.argmax())


@pytest.mark.parametrize("backend", BACKENDS)
def test_counts_distinct_and_within_cloud(backend):
    pos, batch = ragged([100, 7, 64, 1], seed=3)
    idx = fps(pos, batch, ratio=0.25, backend=backend)
    ptr = [0, 100, 107, 171, 172]
    counts = [25, 2, 16, 1]  # ceil(ratio * n)
    assert idx.numel() == sum(counts)
    off = 0
    for b, c in enumerate(counts):
        part = idx[off:off + c]
        off += c
        assert part.unique().numel() == c
        assert bool(((part >= ptr[b]) & (part < ptr[b + 1])).all())
    idx = fps(pos, batch, num=10, backend=backend)
    assert idx.numel() == 10 + 7 + 10 + 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_deterministic_and_order_independent(backend):
    pos, batch = ragged([120, 90], seed=4)
    a = fps(pos, batch, num=16, backend=backend)
    assert torch.equal(a, fps(pos, batch, num=16, backend=backend))
    perm = torch.cat([torch.randperm(120), 120 + torch.randperm(90)])
    b = fps(pos[perm], batch, num=16, backend=backend)
    # the same points are chosen whatever the stored order
    assert set(perm[b].tolist()) == set(a.tolist())


@pytest.mark.parametrize("backend", BACKENDS)
def test_coverage_close_to_reference(backend):
    pos, batch = ragged([2000], seed=5)
    ref = fps(pos, batch, num=64, backend="torch")
    idx = fps(pos, batch, num=64, backend=backend)
    assert fps_min_dist(pos, idx) <= 1.5 * fps_min_dist(pos, ref)
    rnd = torch.randperm(2000)[:64]
    assert fps_min_dist(pos, idx) < fps_min_dist(pos, rnd)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sampling_order_prefixes(backend):
    # samples come in sampling order, also when all points are taken: the
    # first m of num=n are the samples of num=m
    pos, batch = ragged([6, 40, 1], seed=7)
    full = fps(pos, batch, ratio=1.0, backend=backend)
    assert sorted(full.tolist()) == list(range(47))
    few = fps(pos, batch, num=3, backend=backend)
    assert full[:3].tolist() == few[:3].tolist()  # cloud 0: all 6 vs first 3
    assert full[6:9].tolist() == few[3:6].tolist()


def test_explicit_start_and_random_start():
    pos, batch = ragged([30, 30], seed=6)
    idx = fps(pos, batch, num=5, start=torch.tensor([3, 7]))
    assert idx[0] == 3 and idx[5] == 37
    g = torch.Generator().manual_seed(0)
    r = fps(pos, batch, num=5, random_start=True, generator=g)
    assert r.numel() == 10
    assert torch.equal(fps(pos, batch, num=5, start=[3, 7]), idx)  # a list too
    for bad in (torch.tensor([3.0, 7.0]), [0.5, 1.0], torch.tensor([True, False])):
        with pytest.raises(ValueError, match="integer local indices"):
            fps(pos, batch, num=5, start=bad)
    with pytest.raises(ValueError, match="cannot take a start"):
        fps(pos, batch, num=5, start=torch.tensor([0, 0]), backend="fpsample")


@pytest.mark.parametrize("kwargs, match", [
    (dict(), "exactly one of ratio and num"),
    (dict(ratio=0.5, num=3), "exactly one"),
    (dict(ratio=0.0), "ratio must be in"),
    (dict(ratio=1.5), "ratio must be in"),
    (dict(num=0), "num must be"),
    (dict(num=2, backend="x"), "unknown fps backend"),
    (dict(num=2, start=torch.tensor([99])), "start must"),
    (dict(num=2, batch=torch.zeros(10, dtype=torch.long), batch_size=0),
     "batch_size must be"),
    (dict(num=2, batch=torch.tensor([0] * 5 + [1] * 5), batch_size=1),
     "batch_size=1 but batch holds cloud id 1"),
])
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fps(torch.randn(10, 3), **kwargs)


def test_nan_rejected():
    pos = torch.randn(10, 3)
    pos[3, 1] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        fps(pos, num=3)


def test_torch_fps_on_device(device):
    pos, batch = ragged([200, 50], seed=11)
    a = fps(pos, batch, num=20, backend="torch")
    b = fps(pos.to(device), batch.to(device), num=20)
    assert b.device.type == device.type
    if device.type == "cpu":
        assert set(b.tolist()) == set(fps(pos, batch, num=20).tolist())
    else:
        assert torch.equal(a, b.cpu())


def test_lex_order_equals_numpy_lexsort():
    # the fpsample backend's canonical order: ties in x and (x, y), exact
    # duplicates, negative numbers and signed zeros (lexsort: -0.0 == 0.0)
    import sys

    import numpy as np

    lex_order = sys.modules["pointsam.ops.fps"]._lex_order
    rs = np.random.RandomState(0)
    p = (rs.randn(3000, 3) * 10).astype(np.float32)
    p[:1000, 0] = np.round(p[:1000, 0])
    p[:500, 1] = np.round(p[:500, 1])
    p[100:200] = p[100]
    p[:300:2, 1] = -0.0
    p[1:300:2, 1] = 0.0
    p[300:320, 2] = -0.0
    assert np.array_equal(lex_order(p), np.lexsort((p[:, 2], p[:, 1], p[:, 0])))
