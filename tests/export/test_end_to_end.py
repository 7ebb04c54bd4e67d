"""End-to-end export (``num_points=N``): the plan is in the graph, the input is the
raw clouds; ONNX Runtime and the ExportedProgram reproduce eager
``model.network(x, pos, fixed_size_plan(model, pos))`` on real ModelNet10 shapes.

The default run exports ``pointnet2_lite_cls`` without attention (about 25 s);
the lite models with none / local_global are ``-m slow``.
"""

from __future__ import annotations

import pytest
import torch

from pointsam.export import (
    OnnxModel,
    export_onnx,
    export_program,
    fixed_size_plan,
    predict_onnx,
)
from tests.export.test_export import SHAPES, TOL, _model, _pcd

N = 1024


def _batch(shared, shapes=SHAPES[:2]) -> torch.Tensor:
    return torch.stack([_pcd(shared, s, N) for s in shapes])  # [B, N, 3]


def _eager(model, pos: torch.Tensor, category=None) -> torch.Tensor:
    with torch.no_grad():
        flat, _, plan = fixed_size_plan(model, pos)
        out = model.network(None, flat, plan, category=category)
    b = pos.size(0)
    return out if out.size(0) == b else out.view(b, N, -1)


def _check(name: str, attention, shared, tmp_path, extra_meta=None) -> OnnxModel:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = _model(name, attention)
    ep, meta = export_program(model, num_points=N)
    assert meta["end_to_end"] and meta["num_points"] == N
    path = export_onnx(model, tmp_path / f"{name}.onnx", program=ep, num_points=N,
                       model_name=name, model_args={"attention": attention},
                       optimize=False, extra_meta=extra_meta)
    sess = OnnxModel(path, threads=2)  # 2 threads: catches races in ORT ops
    assert sess.end_to_end and sess.model is None
    assert sess.input_names == (["pos", "category"] if "partseg" in name
                                else ["pos"])
    pos = _batch(shared)  # B = 2
    cat = torch.tensor([3, 5]) if "partseg" in name else None
    ref = _eager(model, pos, cat)
    with torch.no_grad():
        got = ep.module()(pos, *([cat] if cat is not None else []))
    assert got.shape == ref.shape
    assert (got - ref).abs().max() < TOL, (name, attention, "pt2")
    out = torch.from_numpy(sess(pos, category=cat)["logits"])
    assert out.shape == ref.shape
    err = (out - ref).abs().amax(-1).flatten()  # [rows]
    if name.startswith("dgcnn") and "semseg" not in name:
        # the feature-space kNN is discontinuous: ORT's float32 rounding (~1e-7)
        # can swap two near-tied neighbours (as tests/export/test_export.py)
        assert float((err < TOL).float().mean()) > 0.99, (name, attention)
    else:
        assert err.max() < TOL, (name, attention, "onnx")
    return sess


@pytest.mark.dataset
def test_pointnet2_cls_end_to_end_equals_eager(shared_data, tmp_path):
    from pointsam.engine.config import config_from_dict
    from pointsam.engine.predict import prediction_record

    # what `pointsam export --end-to-end --num-points N` records: a model
    # evaluated at 512 points, predicted at the graph's N
    record = prediction_record(config_from_dict({"data": {"num_points": 512}}),
                               {"task": "cls", "num_classes": 10}, num_points=N)
    sess = _check("pointnet2_lite_cls", None, shared_data, tmp_path,
                  extra_meta={"prediction": record})
    model = _model("pointnet2_lite_cls", None)
    # a batch of another size (B is dynamic), packed with a batch vector
    pos = _batch(shared_data, SHAPES)  # [3, N, 3]
    batch = torch.arange(3).repeat_interleave(N)
    got = torch.from_numpy(sess(pos.reshape(-1, 3), batch)["logits"])
    assert (got - _eager(model, pos)).abs().max() < TOL
    # another cloud size is refused with the size the graph takes
    with pytest.raises(ValueError, match=f"exactly {N} points"):
        sess(pos[0, :900])
    # predict_onnx prepares a cloud as the checkpoint's predict does: unit
    # sphere, then FPS to data.num_points, which the record sets to the graph's N
    from torch_geometric.data import Data

    from pointsam import ops
    from pointsam.data.transforms import NormalizeScale

    big = torch.cat([pos[0], pos[1] * 0.5])  # [2N, 3]
    res = predict_onnx(sess.path, Data(pos=big), threads=2)
    assert res["meta"]["export"]["num_points"] == N
    unit = NormalizeScale()(Data(pos=big)).pos
    ref = _eager(model, unit[ops.fps(unit, num=N)].unsqueeze(0))
    assert torch.allclose(torch.tensor(res["probs"]), ref.softmax(-1)[0], atol=TOL)


@pytest.mark.slow
@pytest.mark.dataset
@pytest.mark.parametrize("attention", [None, "local_global"])
@pytest.mark.parametrize("name", ["pointnet2_lite_cls", "dgcnn_lite_cls",
                                  "pointnet2_lite_partseg", "dgcnn_lite_partseg",
                                  "pointnet2_lite_semseg", "dgcnn_lite_semseg"])
def test_lite_end_to_end_matrix(name, attention, shared_data, tmp_path):
    _check(name, attention, shared_data, tmp_path)


@pytest.mark.slow
def test_end_to_end_with_attention_outputs(tmp_path):
    pytest.importorskip("onnxruntime")
    from pointsam.nn import record_attention

    model = _model("pointnet2_lite_cls", "local_global")
    path = export_onnx(model, tmp_path / "m.onnx", num_points=256,
                       with_attention=True, optimize=False)
    sess = OnnxModel(path, threads=2)
    pos = torch.rand(2, 256, 3) * 2 - 1
    out = sess(pos)
    with torch.no_grad(), record_attention(model) as rec:
        flat, _, plan = fixed_size_plan(model, pos)
        ref = model.network(None, flat, plan)
    assert (torch.from_numpy(out["logits"]) - ref).abs().max() < TOL
    for name in (n for n in out if n != "logits"):
        mod, key = name[len("attn."):].rsplit(".", 1)
        assert torch.allclose(torch.from_numpy(out[name]), rec[mod][key],
                              atol=TOL), name


@pytest.mark.slow
@pytest.mark.dataset
@pytest.mark.parametrize("name,attention", [("pointnet2_lite_cls", "axial"),
                                            ("dgcnn_lite_cls", "cbam")])
def test_end_to_end_other_attention(name, attention, shared_data, tmp_path):
    _check(name, attention, shared_data, tmp_path)
