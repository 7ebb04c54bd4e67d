"""ops.fixed_size: the dense torch plan ops against the references and the
ragged ops (eager; the export of the same code is tests/export/test_end_to_end.py)."""

from __future__ import annotations

import sys

import pytest
import torch

from pointsam import ops
from pointsam.models import create_model
from pointsam.nn.network import dense_layout
from tests.reference.ops import fps_naive, knn_sets


def clouds(b: int, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(b * n, 3, generator=g)
    return pos, torch.arange(b).repeat_interleave(n)


def test_fps_dense_is_the_textbook_fps_from_the_canonical_start():
    pos, batch = clouds(2, 200, seed=1)
    got = ops.fps_dense(pos.view(2, 200, 3), 32)  # [2, 32] local
    start = ops.canonical_start(pos, batch, 2)
    for b in range(2):
        ref = fps_naive(pos[b * 200:(b + 1) * 200], 32, int(start[b]))
        assert got[b].tolist() == ref


def test_fps_dense_on_a_real_shape(shared_data):
    from pointsam.data import read_cloud

    path = (shared_data / "modelnet10_pcd_1024" / "ModelNet10" / "pcd" / "chair"
            / "test")
    pos = read_cloud(sorted(path.glob("*.pcd"))[0]).pos.float()  # [1024, 3]
    got = ops.fps_dense(pos.unsqueeze(0), 256)[0]
    start = ops.canonical_start(pos, torch.zeros(len(pos), dtype=torch.long), 1)
    assert got.tolist() == fps_naive(pos, 256, int(start[0]))


@pytest.mark.parametrize("kw", [{"num": 40}, {"ratio": 0.25}, {"num": 500}])
def test_fps_in_fixed_size_is_the_torch_backend(kw):
    pos, batch = clouds(3, 120, seed=2)
    with ops.fixed_size(3):
        got = ops.fps(pos, batch, batch_size=3, **kw)
    assert torch.equal(got, ops.fps(pos, batch, backend="torch", **kw))


def test_fps_in_fixed_size_refuses_a_start():
    pos, batch = clouds(2, 30)
    with ops.fixed_size(2), pytest.raises(ValueError, match="starts canonically"):
        ops.fps(pos, batch, num=5, random_start=True, batch_size=2)


@pytest.mark.parametrize("k", [5, 40])  # 40 > the 30 points of a cloud: padding
def test_knn_dense_is_the_reference(k):
    pos, batch = clouds(2, 30, seed=3)
    q, qb = clouds(2, 7, seed=4)
    got = ops.knn_dense(pos.view(2, 30, 3), k, q.view(2, 7, 3))  # [2, 7, k]
    ref = knn_sets(pos, k, batch, q, qb)
    for b in range(2):
        for i in range(7):
            row = got[b, i]
            valid = row[row >= 0] + 30 * b
            d = ((pos[valid].double() - q[7 * b + i].double()) ** 2).sum(-1)
            assert torch.allclose(d, ref[7 * b + i], atol=1e-6)
            assert (row < 0).sum() == max(0, k - 30)


@pytest.mark.parametrize("dilation", [1, 2])
def test_knn_and_radius_in_fixed_size_are_the_ragged_ops(dilation):
    pos, batch = clouds(2, 64, seed=5)
    pos = torch.cat([pos, pos[:3]])[3:]  # a few duplicate points (ties at 0)
    cidx = ops.fps(pos, batch, num=16, backend="torch")
    q, qb = pos[cidx], batch[cidx]
    with ops.fixed_size(2):
        knn_self = ops.knn(pos, 8, batch, dilation=dilation, batch_size=2)
        knn_q = ops.knn(pos, 8, batch, query=q, query_batch=qb, batch_size=2)
        ball = ops.radius(pos, 0.8, batch, query=q, query_batch=qb,
                          max_num_neighbors=12, batch_size=2)
    ref_self = ops.knn(pos, 8, batch, dilation=dilation, backend="dense")
    ref_q = ops.knn(pos, 8, batch, query=q, query_batch=qb, backend="dense")
    ref_ball = ops.radius(pos, 0.8, batch, query=q, query_batch=qb,
                          max_num_neighbors=12, backend="dense")
    for got, ref in ((knn_self, ref_self), (knn_q, ref_q), (ball, ref_ball)):
        assert torch.equal(got[1], ref[1])  # masks
        assert torch.equal(got[0].sort(1).values, ref[0].sort(1).values)
    assert torch.equal(knn_self[0][:, 0], torch.arange(128))  # self first


def test_layout_and_counts_are_the_ragged_ones():
    _, batch = clouds(3, 10)
    with ops.fixed_size(3):
        slot, mask = dense_layout(batch, 3, min_width=12)
        index = torch.arange(30) // 5 % 2 + 2 * (torch.arange(30) // 10)  # [30]
        counts = ops.count_per_index(index, 6)
    ref_slot, ref_mask = dense_layout(batch, 3, min_width=12)
    assert torch.equal(slot, ref_slot) and torch.equal(mask, ref_mask)
    assert torch.equal(counts, torch.bincount(index, minlength=6))


@pytest.mark.parametrize("name,attention", [
    ("pointnet2_lite_cls", "local_global"), ("pointnet2_lite_partseg", "local_global"),
    ("pointnet2_lite_semseg", "axial"), ("dgcnn_lite_cls", "local_global"),
    ("dgcnn_lite_semseg", None)])
def test_model_plan_in_fixed_size_is_the_torch_backend_plan(name, attention,
                                                           monkeypatch):
    """The same keys, shapes, dtypes and values as ``model.plan`` with the torch
    FPS (fpsample switched off) and the ragged kNN."""
    model = create_model(name, attention=attention).eval()
    pos, batch = clouds(2, 300, seed=6)
    with torch.no_grad(), ops.fixed_size(2):
        got = model.plan(pos, batch, batch_size=2)
    monkeypatch.setattr(sys.modules["pointsam.ops.fps"], "_available",
                        lambda n: n == "torch")
    with torch.no_grad():
        ref = model.plan(pos, batch)
    assert sorted(got) == sorted(ref)
    for key in ref:
        assert got[key].dtype == ref[key].dtype, key
        assert torch.equal(got[key], ref[key]), key
