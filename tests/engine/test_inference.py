"""Whole-scan chunked / voxel inference carries predictions back to every point."""

import sys
from pathlib import Path

import torch
from torch_geometric.data import Data

from pointsam import ops
from pointsam.engine.inference import chunk_assignment, predict_scan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import one_thread  # noqa: E402,F401  (autouse: one torch thread)


class PerPoint(torch.nn.Module):
    """Logits depend on each point alone, so chunking must not change them."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 5)

    def forward(self, b):
        return self.lin(b.pos)


class CloudMean(torch.nn.Module):
    """Logits depend on the cloud's mean: reveals which points share a chunk."""

    def forward(self, b):
        mean = ops.segment_mean(b.pos, b.batch, int(b.batch.max()) + 1)  # [B, 3]
        return torch.cat([mean[b.batch], -mean[b.batch]], 1)  # [N, 6]


def test_chunks_cover_every_point_once():
    pos = torch.rand(2000, 3) * torch.tensor([50.0, 50.0, 3.0])
    parts = chunk_assignment(pos, 300)
    idx = torch.cat(parts)
    assert idx.numel() == 2000 and torch.equal(idx.sort().values, torch.arange(2000))
    assert max(p.numel() for p in parts) <= 300


def test_chunked_equals_whole_for_per_point_model():
    torch.manual_seed(0)
    m = PerPoint().eval()
    scan = Data(pos=torch.rand(3000, 3) * 20)
    whole = predict_scan(m, scan)
    chunked = predict_scan(m, scan, chunk_points=256, chunks_per_batch=3)
    assert torch.allclose(whole, chunked, atol=1e-6)
    assert torch.allclose(whole, m.lin(scan.pos).softmax(-1), atol=1e-6)


def test_chunks_are_separate_clouds():
    scan = Data(pos=torch.rand(1000, 3) * 10)
    p = predict_scan(CloudMean(), scan, chunk_points=200)
    # points of one chunk share one row of scores; several chunks -> several rows
    assert 5 <= torch.unique(p, dim=0).size(0) <= 20


def test_voxel_results_reach_every_point():
    torch.manual_seed(0)
    m = PerPoint().eval()
    scan = Data(pos=torch.rand(4000, 3) * 10, x=torch.rand(4000, 1))
    p = predict_scan(m, scan, voxel_size=1.0, chunk_points=400)
    g = ops.grid_subsample(scan.pos, 1.0)
    assert p.shape == (4000, 5)
    # every point carries the score of its voxel's mean point
    ref = m.lin(g.pos).softmax(-1)[g.cluster]  # [N, 5]
    assert torch.allclose(p, ref, atol=1e-6)
    assert g.pos.size(0) < 4000


def test_scan_votes_turn_about_z_and_average():
    """Whole-scan test-time augmentation: vote v turns the scan by 2 pi v / V
    about z (mirrored on odd votes), keeping heights, distances to the axis
    and labels; evaluate() averages predict_scan over the votes."""
    from torch.utils.data import DataLoader
    from torch_geometric.data import Batch

    from pointsam.engine.evaluation import evaluate
    from pointsam.engine.inference import scan_vote
    from pointsam.engine.tasks import SemSegTask

    g = torch.Generator().manual_seed(0)
    scan = Data(pos=torch.rand(3000, 3, generator=g) * 10 - 5,
                y=torch.randint(0, 5, (3000,), generator=g))
    assert scan_vote(scan, 0, 4) is scan
    for v in (1, 2, 3):
        d = scan_vote(scan, v, 4)
        assert torch.allclose(d.pos[:, 2], scan.pos[:, 2])
        assert torch.allclose(d.pos[:, :2].norm(dim=1), scan.pos[:, :2].norm(dim=1),
                              atol=1e-5)
        assert torch.equal(d.y, scan.y) and not torch.allclose(d.pos, scan.pos)
    # vote 2 of 4 is a half turn: (x, y) -> (-x, -y)
    assert torch.allclose(scan_vote(scan, 2, 4).pos[:, :2], -scan.pos[:, :2], atol=1e-5)
    # vote 1 of 4: a quarter turn of the mirrored scan, (x, y) -> (y, x)
    assert torch.allclose(scan_vote(scan, 1, 4).pos[:, :2], scan.pos[:, [1, 0]],
                          atol=1e-5)
    torch.manual_seed(0)
    m = PerPoint().eval()
    kw = dict(voxel_size=1.0, chunk_points=500)
    loader = DataLoader([scan], batch_size=1, collate_fn=Batch.from_data_list)
    task = SemSegTask(5)
    got = evaluate(m, loader, task, torch.device("cpu"), votes=4, **kw)
    probs = sum(predict_scan(m, scan_vote(scan, v, 4), **kw) for v in range(4)) / 4
    met = task.new_metrics()
    task.update(met, probs, scan)
    assert got["confusion"] == met.confusion.tolist()
    one = evaluate(m, loader, task, torch.device("cpu"), votes=1, **kw)
    assert one["confusion"] != got["confusion"]  # the votes changed the answer
