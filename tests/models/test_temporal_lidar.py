"""The multi-scan LiDAR segmenter and its single-scan twin (issue 11 section 3)."""

from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch, Data

from pointsam.models import TemporalLidarSegmenter, create_model
from pointsam.models.temporal_lidar import CoarseTemporal
from pointsam.nn import TemporalAttention

ROOT = Path(__file__).resolve().parents[2]
NAME = "pointnet2_lite_temporal_lidarseg"


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _scene(seed=0, n=(160, 150, 140), shift=0.0):
    """One multi-scan cloud: a street-like slab per scan, frame 0 first."""
    g = torch.Generator().manual_seed(seed)
    parts, frames = [], []
    for t, m in enumerate(n):
        p = torch.rand(m, 3, generator=g) * torch.tensor([20.0, 20.0, 2.0]) - 10
        p[:, 0] += shift * t  # something moved between the scans
        parts.append(p)
        frames.append(torch.full((m,), t, dtype=torch.long))
    return Data(pos=torch.cat(parts), frame=torch.cat(frames))


def _model(num_past=2, seed=0, **kw):
    torch.manual_seed(seed)
    return create_model(NAME, num_classes=5, num_past=num_past, k=4, **kw).eval()


def test_shapes_and_registered():
    d = Batch.from_data_list([_scene(0), _scene(1, n=(120, 130, 110))])
    for num_past in (2, 0):
        m = _model(num_past)
        out = m(d)
        assert out.shape == (160 + 120, 5)  # the newest scan's points only
    assert isinstance(m, TemporalLidarSegmenter) and "num_past=0" in repr(m)


@pytest.mark.parametrize("placement", ["coarse", "full"])
def test_twin_differs_only_by_the_temporal_module(placement):
    t, s = _model(2, placement=placement), _model(0, placement=placement)
    names_t = {n: p.shape for n, p in t.named_parameters()}
    names_s = {n: p.shape for n, p in s.named_parameters()}
    extra = {n for n in names_t if n not in names_s}
    assert extra and all(n.startswith("temporal.") for n in extra)
    assert all(names_t[n] == names_s[n] for n in names_s)
    ta = t.temporal.attention if placement == "coarse" else t.temporal
    assert isinstance(ta, TemporalAttention) and s.temporal is None
    assert isinstance(t.temporal, CoarseTemporal) == (placement == "coarse")


@pytest.mark.parametrize("placement", ["coarse", "full"])
def test_invariant_to_permuting_past_points(placement):
    d = _scene(2)
    m = _model(2, placement=placement)
    ref = m(d)
    g = torch.Generator().manual_seed(5)
    n = d.pos.size(0)
    perm = torch.randperm(n, generator=g)  # scans interleaved, past order shuffled
    # keep the newest scan's points in their own order (the output follows it)
    new = perm[d.frame[perm] == 0]
    perm[d.frame[perm] == 0] = new.sort().values
    out = m(Data(pos=d.pos[perm], frame=d.frame[perm]))
    assert torch.allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("placement", ["coarse", "full"])
def test_past_scans_of_one_cloud_never_reach_another(placement):
    a, b = _scene(3), _scene(4)
    m = _model(2, placement=placement)
    ref = m(Batch.from_data_list([a, b]))
    a2 = a.clone()
    past = a2.frame > 0
    a2.pos[past] = a2.pos[past] + torch.tensor([1.5, -0.7, 0.2])  # A's past moves
    out = m(Batch.from_data_list([a2, b]))
    na = int((a.frame == 0).sum())
    assert torch.allclose(out[na:], ref[na:], atol=1e-5)  # cloud B unchanged
    assert not torch.allclose(out[:na], ref[:na], atol=1e-4)  # cloud A sees it


def test_twin_ignores_past_scans():
    d = _scene(5)
    m = _model(0)
    ref = m(d)
    cur = d.frame == 0
    only_newest = m(Data(pos=d.pos[cur], frame=d.frame[cur]))
    no_frame = m(Data(pos=d.pos[cur]))  # no `frame`: one scan
    assert torch.allclose(only_newest, ref, atol=1e-6)
    assert torch.allclose(no_frame, ref, atol=1e-6)


@pytest.mark.parametrize("placement", ["coarse", "full"])
def test_gradients_reach_the_temporal_module(placement):
    d = Batch.from_data_list([_scene(6, shift=1.0), _scene(7)])
    m = _model(2, placement=placement).train()
    m(d).square().mean().backward()
    for name, p in m.temporal.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert m.embed.lins[0].weight.grad.abs().sum() > 0


def test_clear_errors():
    m = _model(2)
    one_past = _scene(8, n=(100, 90))
    with pytest.raises(ValueError, match="num_past=2 previous scans"):
        m(one_past)
    with pytest.raises(ValueError, match="frame == 0"):
        m(Data(pos=torch.randn(50, 3), frame=torch.ones(50, dtype=torch.long)))
    with pytest.raises(ValueError, match="integer tensor"):
        m(Data(pos=torch.randn(50, 3), frame=torch.zeros(50)))
    with pytest.raises(ValueError, match="num_past must be"):
        create_model(NAME, num_past=-1)


def test_predict_refuses_the_temporal_model():
    from pointsam.engine.config import config_from_dict
    from pointsam.engine.predict import predict_cloud
    from pointsam.engine.tasks import SemSegTask

    m = _model(2)
    cfg = config_from_dict({"train": {"out_dir": "unused"}})
    with pytest.raises(ValueError, match="multi-scan model"):
        predict_cloud(m, SemSegTask(5), cfg, Data(pos=torch.randn(200, 3) * 5))
    # the twin is a single-scan model: one file is fine
    res = predict_cloud(_model(0), SemSegTask(5), cfg, Data(pos=torch.randn(200, 3) * 5))
    assert res["probs"].shape == (200, 5)


@pytest.mark.parametrize("placement", ["coarse", "full"])
def test_plan_then_network_is_forward(placement):
    """The plan holds every scan's rows, heights, voxels, balls and neighbour
    tables; the network on it is the forward, and it reads no position the
    plan did not see (a plan of other positions gives other logits)."""
    d = Batch.from_data_list([_scene(10, shift=1.0), _scene(11, n=(120, 130, 110))])
    m = _model(2, placement=placement)
    plan = m.plan(d.pos, d.batch, frame=d.frame)
    assert plan["scan0.index"].tolist() == (d.frame == 0).nonzero().flatten().tolist()
    assert all(k.split(".")[0] in ("scan0", "scan1", "scan2", "temporal", "net")
               for k in plan)
    with torch.no_grad():
        ref = m(d)
        assert torch.equal(m.network(None, d.pos, plan), ref)
        moved = d.pos + torch.tensor([3.0, -2.0, 0.5])  # translation invariant
        assert torch.allclose(m.network(None, moved, m.plan(moved, d.batch,
                                                            frame=d.frame)),
                              ref, atol=1e-5)
    with pytest.raises(ValueError, match="needs frame"):
        from pointsam.export import plan_inputs
        plan_inputs(m, d.pos, d.batch)


@pytest.mark.parametrize("placement", ["coarse", "full"])
def test_export_equals_eager_on_a_synthetic_sequence(placement, tmp_path):
    """Issue 24 section 6: the temporal model exports (ONNX, .pt2); ONNX Runtime
    (two threads) and the program equal eager within 1e-4 of the logits' scale
    on a SyntheticLidar sequence of three scans with moving cars, two clouds of
    different sizes in one batch, none of them the traced example."""
    pytest.importorskip("onnxruntime")
    from pointsam.data import SyntheticLidar
    from pointsam.export import OnnxModel, export_onnx, export_program, plan_inputs

    ds = SyntheticLidar(num_samples=2, num_scans=3, moving_classes=True,
                        beams=16, azimuth_steps=256, crop_radius=20.0, seed=3)
    d = Batch.from_data_list([ds[0], ds[1]])
    args = {"num_classes": 5, "num_past": 2, "k": 4, "placement": placement}
    torch.manual_seed(0)
    m = create_model(NAME, **args)
    for mod in m.modules():  # non-trivial statistics: eval is not the identity
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    m.eval()
    with torch.no_grad():
        ref = m(d)  # [N_0, 5]
    tol = 1e-4 * max(1.0, float(ref.abs().max()))
    prog, meta = export_program(m)
    assert meta["outputs"] == ["logits"]
    _, tensors = plan_inputs(m, d.pos, d.batch, frame=d.frame)
    with torch.no_grad():
        got = prog.module()(*tensors)
    assert got.shape == ref.shape and float((got - ref).abs().max()) <= tol
    path = export_onnx(m, tmp_path / "temporal.onnx", program=prog, model_name=NAME,
                       model_args=args, optimize=False)
    sess = OnnxModel(path, threads=2)  # built from the registry name: the plan side
    out = torch.from_numpy(sess(d.pos, d.batch, frame=d.frame)["logits"])
    assert out.shape == ref.shape and float((out - ref).abs().max()) <= tol
    assert bool((out.argmax(1) == ref.argmax(1)).float().mean() > 0.999)


def test_semseg_task_scores_the_newest_scan_only():
    from pointsam.engine.tasks import SemSegTask

    d = _scene(9)
    d.y = torch.randint(0, 5, (d.pos.size(0),))
    d.y[d.frame > 0] = 4
    task = SemSegTask(5)
    cur = d.frame == 0
    full = torch.randn(d.pos.size(0), 5)
    assert torch.allclose(task.loss(full, d), task.loss(full[cur], d))
    assert task.count(d) == int(cur.sum())
    met = task.new_metrics()
    task.update(met, full, d)
    assert int(met.confusion.sum()) == int(cur.sum())


def test_whole_scan_inference_refuses_multi_scan_samples():
    from pointsam.engine.inference import predict_scan

    with pytest.raises(ValueError, match="frame > 0"):
        predict_scan(_model(2), _scene(10), voxel_size=0.2)


def test_configs_train_end_to_end(tmp_path):
    """The three configs, shrunk to seconds: a couple of steps each."""
    import json

    from pointsam.engine.config import load_config
    from pointsam.engine.trainer import Trainer

    for name in ("temporal_coarse", "temporal_full", "temporal_single"):
        cfg = load_config(ROOT / "train" / "lidar" / f"{name}.yaml", [
            "train.epochs=1", "data.args.num_samples=3", "data.args.beams=8",
            "data.args.azimuth_steps=120", "train.max_batches=2",
            "train.tensorboard=false", f"train.out_dir={tmp_path / name}"])
        s = Trainer(cfg).fit()
        assert s["model"] == NAME and len(s["test"]["iou"]) == 10
        assert json.loads((tmp_path / name / "summary.json").read_text())["test"]


@pytest.mark.parametrize("placement", ["coarse", "full"])
def test_a_common_translation_of_every_scan_changes_nothing(placement):
    """Only relative positions matter: voxels are anchored at each cloud's own
    corner and the balls, attention and interpolation use differences."""
    d = _scene(9, shift=0.7)
    m = _model(2, placement=placement)
    ref = m(d)
    moved = Data(pos=d.pos + torch.tensor([12.0, -4.5, 0.6]), frame=d.frame)
    assert torch.allclose(m(moved), ref, atol=1e-4)
