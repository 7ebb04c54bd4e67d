"""Export: ExportedProgram and ONNX Runtime reproduce eager on real clouds.

The default run covers one lite model per task and backbone with
``attention="local_global"``; the whole matrix (every registered model x
none/cbam/local_global/axial) is ``test_export_matrix`` (``-m slow``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointsam.data import read_cloud
from pointsam.export import (
    ExportError,
    OnnxModel,
    export_onnx,
    export_program,
    plan_inputs,
)
from pointsam.models import create_model, list_models
from pointsam.nn import record_attention

TOL = 1e-4
LITE = ["pointnet2_lite_cls", "pointnet2_lite_partseg", "pointnet2_lite_semseg",
        "dgcnn_lite_cls", "dgcnn_lite_partseg", "dgcnn_lite_semseg",
        "pointnet2_lite_lidarseg"]
SHAPES = ["sofa/test/sofa_0738.pcd", "chair/test/chair_0890.pcd",
          "monitor/test/monitor_0466.pcd"]


def _pcd(shared, rel: str, n: int) -> torch.Tensor:
    path = shared / "modelnet10_pcd_1024" / "ModelNet10" / "pcd" / rel
    if not path.is_file():
        path = sorted(path.parent.glob("*.pcd"))[0]
    pos = read_cloud(path).pos.float()[:n]
    pos = pos - pos.mean(0)
    return pos / pos.norm(dim=1).max()


def _lidar(shared, n: int, skip: int = 0) -> torch.Tensor:
    """Points ``skip .. skip + n`` of the real frame by distance to the sensor (a
    crop of its 86k points, in the frame's own metres)."""
    a = np.load(shared / "open3d_ml_demo_data" / "examples" / "demo_data" / "points"
                / "000750.npy")
    pos = torch.from_numpy(a[:, :3]).float()
    return pos[pos.norm(dim=1).argsort()[skip:skip + n]]  # [n, 3]


def _clouds(shared, name: str) -> list[dict[str, torch.Tensor]]:
    """Real inputs of several sizes: one cloud, and two clouds in one batch."""
    if "semseg" in name or "lidarseg" in name:
        sizes = [[3000], [2000, 2600]]
        parts = [[_lidar(shared, n)] for n in (3000,)] + [
            [_lidar(shared, 2000), _lidar(shared, 2600, skip=3000)]]
    else:
        sizes = [[1024], [700, 900]]
        parts = [[_pcd(shared, SHAPES[0], 1024)],
                 [_pcd(shared, SHAPES[1], 700), _pcd(shared, SHAPES[2], 900)]]
    out = []
    if "temporal" in name:  # three scans a cloud: other points of the real frame
        for sz in ([3000], [2000, 2600]):
            pos, batch, frame = [], [], []
            for c, n in enumerate(sz):
                for tau in range(3):
                    p = _lidar(shared, n - 300 * tau, skip=4000 * c + 500 * tau)
                    pos.append(p)
                    batch.append(torch.full((p.size(0),), c))
                    frame.append(torch.full((p.size(0),), tau))
            out.append({"pos": torch.cat(pos), "batch": torch.cat(batch),
                        "frame": torch.cat(frame)})
        return out
    for sz, ps in zip(sizes, parts):
        pos = torch.cat(ps)
        batch = torch.repeat_interleave(torch.arange(len(sz)), torch.tensor(sz))
        cloud = {"pos": pos, "batch": batch}
        if "partseg" in name:
            cloud["category"] = torch.arange(len(sz)) + 3
        out.append(cloud)
    return out


def _eager(model, c) -> torch.Tensor:
    kw = {k: c[k] for k in ("category", "frame") if k in c}
    with torch.no_grad():
        return model(pos=c["pos"], batch=c["batch"], **kw)


def _model(name: str, attention, **kwargs):
    torch.manual_seed(0)
    m = create_model(name, attention=attention, **kwargs)
    # non-trivial BatchNorm statistics, so eval differs from identity
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def _feature_graph(model) -> bool:
    """Whether a stage builds its graph in feature space (DGCNN, dynamic)."""
    bb = getattr(model, "backbone", None)
    return any(bb._dynamic(i) for i in range(len(bb.stages))) \
        if hasattr(bb, "_dynamic") else False


def _check(name: str, attention, shared, tmp_path, onnx: bool = True) -> None:
    model = _model(name, attention)
    clouds = _clouds(shared, name)
    ep, meta = export_program(model)
    assert meta["inputs"][0] == "pos" and meta["outputs"] == ["logits"]
    sess = None
    if onnx:
        path = export_onnx(model, tmp_path / f"{name}.onnx", program=ep,
                           model_name=name, model_args={"attention": attention},
                           optimize=False)  # ORT optimises; half the export time
        sess = OnnxModel(path, model=model, threads=2)  # catches races in ORT ops
    for c in clouds:
        ref = _eager(model, c)
        _, tensors = plan_inputs(model, c["pos"], c["batch"],
                                 category=c.get("category"), frame=c.get("frame"))
        with torch.no_grad():
            got = ep.module()(*tensors)
        _assert_close(got, ref, model, (name, attention, "pt2"))
        if sess is not None:
            out = sess(c["pos"], c["batch"], category=c.get("category"),
                       frame=c.get("frame"))
            _assert_close(torch.from_numpy(out["logits"]), ref, model,
                          (name, attention, "onnx"))


def _assert_close(got: torch.Tensor, ref: torch.Tensor, model, what) -> None:
    """Every row within TOL; on a graph built in feature space, > 99% of rows.

    A kNN in feature space is discontinuous: float32 rounding of the features
    (~1e-7: ONNX Runtime's kernels, and the BatchNorm folded into the Linear in
    both exported formats) can swap two near-tied neighbours of a point.
    """
    assert got.shape == ref.shape, what
    err = (got - ref).abs().amax(-1)  # [rows]
    if _feature_graph(model):
        frac = float((err < TOL).float().mean())
        print(f"{what}: {frac:.4%} rows within {TOL}")
        assert frac > 0.99, (*what, frac)
    else:
        assert err.max() < TOL, what


@pytest.mark.dataset
@pytest.mark.parametrize("name", LITE)
def test_lite_exports_equal_eager(name, shared_data, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    _check(name, "local_global", shared_data, tmp_path)


@pytest.mark.parametrize("name", LITE)
def test_plan_then_network_is_forward(name):
    model = _model(name, "axial")
    pos = torch.rand(300, 3)
    batch = torch.tensor([0] * 140 + [1] * 160)
    kw = {"category": torch.tensor([1, 2])} if "partseg" in name else {}
    with torch.no_grad():
        ref = model(pos=pos, batch=batch, **kw)
        plan = model.plan(pos, batch)
        assert all(isinstance(v, torch.Tensor) for v in plan.values())
        # the lidar model wraps a segmenter: its plan is under "net."
        assert plan.get("cloud", plan.get("net.cloud")).tolist() == [0, 1]
        out = model.network(None, pos, plan, **kw)
    assert torch.equal(out, ref)


def test_with_attention_outputs_equal_the_recorder(tmp_path):
    pytest.importorskip("onnxruntime")
    model = _model("dgcnn_lite_cls", "cbam")
    path = export_onnx(model, tmp_path / "m.onnx", with_attention=True)
    sess = OnnxModel(path, model=model)
    pos = torch.rand(500, 3)
    out = sess(pos)
    with torch.no_grad(), record_attention(model) as rec:
        ref = model(pos=pos)
    assert (torch.from_numpy(out["logits"]) - ref).abs().max() < TOL
    names = [n for n in out if n != "logits"]
    assert sorted(names) == sorted(f"attn.{m}.{k}" for m in rec for k in rec[m])
    assert "attn.backbone.stages.0.attn.point" in names
    for name in names:
        mod, key = name[len("attn."):].rsplit(".", 1)
        assert np.allclose(out[name], rec[mod][key].numpy(), atol=TOL), name


def test_mhsa_is_refused_with_the_way_around():
    model = _model("dgcnn_lite_cls", "mhsa")
    with pytest.raises(ExportError, match=r"MultiHeadPointAttention.*local_global"):
        export_program(model)


def test_with_attention_needs_attention():
    with pytest.raises(ExportError, match="records no attention"):
        export_program(_model("dgcnn_lite_cls", None), with_attention=True)


@pytest.mark.slow
@pytest.mark.dataset
@pytest.mark.parametrize("attention", [None, "cbam", "local_global", "axial"])
@pytest.mark.parametrize("name", list_models())
def test_export_matrix(name, attention, shared_data, tmp_path):
    pytest.importorskip("onnxruntime")
    _check(name, attention, shared_data, tmp_path)


def test_lidarseg_end_to_end_is_refused_with_why():
    with pytest.raises(ExportError, match="cannot be exported end to end: its input "
                       "feature, the height above the local ground"):
        export_program(_model("pointnet2_lite_lidarseg", None), num_points=1024)


def test_lidarseg_plan_then_network_is_forward(shared_data):
    """The ground height and the centring are plan entries; the network on them
    is exactly the model's forward (world-frame metres of the real frame)."""
    model = _model("pointnet2_lite_lidarseg", "local_global")
    pos = _lidar(shared_data, 2500) + torch.tensor([300.0, -120.0, 4.0])
    with torch.no_grad():
        plan = model.plan(pos)
        assert plan["height"].shape == (2500, 1) and plan["offset"].shape == (2500, 3)
        assert torch.equal(model.network(None, pos, plan), model(pos=pos))


def test_lidarseg_with_shape_features_exports(shared_data, tmp_path):
    """With the local-shape features the plan holds five input channels (height
    and four eigenvalue ratios, computed in Python); torch.export and ONNX run
    the network on them and match eager on real frame crops."""
    pytest.importorskip("onnxruntime")
    model = _model("pointnet2_lite_lidarseg", None, shape_radius=0.5)
    ep, _ = export_program(model)
    path = export_onnx(model, tmp_path / "shape.onnx", program=ep,
                       model_name="pointnet2_lite_lidarseg",
                       model_args={"shape_radius": 0.5}, optimize=False)
    sess = OnnxModel(path, model=model, threads=2)
    for c in _clouds(shared_data, "pointnet2_lite_lidarseg"):
        with torch.no_grad():
            plan = model.plan(c["pos"], c["batch"])
            ref = model(pos=c["pos"], batch=c["batch"])
        assert plan["height"].shape == (c["pos"].size(0), 5)
        _, tensors = plan_inputs(model, c["pos"], c["batch"])
        with torch.no_grad():
            _assert_close(ep.module()(*tensors), ref, model, ("shape", None, "pt2"))
        out = sess(c["pos"], c["batch"])
        _assert_close(torch.from_numpy(out["logits"]), ref, model, ("shape", None, "onnx"))

@pytest.mark.slow
@pytest.mark.parametrize("name", ["pointnet2_lite_cls", "dgcnn_lite_cls",
                                  "pointnet2_lite_semseg"])
def test_network_compiles_without_graph_breaks(name):
    model = _model(name, "local_global")
    pos = torch.rand(600, 3)
    plan = model.plan(pos)
    torch._dynamo.reset()
    with torch.no_grad():
        e = torch._dynamo.explain(model.network)(None, pos, plan)
    assert e.graph_break_count == 0, e.break_reasons


@pytest.mark.parametrize("dilation", [1, 3])
def test_dense_feature_knn_is_ops_feature_knn(dilation):
    from pointsam import ops
    from pointsam.models.dgcnn import dense_feature_knn
    from pointsam.nn.network import dense_layout

    g = torch.Generator().manual_seed(1)
    sizes = [40, 9, 25]  # the middle cloud is smaller than k * dilation
    x = torch.randn(sum(sizes), 6, generator=g)
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    k = 5
    slot, mask = dense_layout(batch, 3, min_width=k * dilation)
    counts = mask.sum(1)
    got = dense_feature_knn(x, k, dilation, slot, mask, counts.cumsum(0) - counts)
    ref, _ = ops.feature_knn(x, k, batch, dilation=dilation)
    assert torch.equal(got.sort(1).values, ref.sort(1).values)
