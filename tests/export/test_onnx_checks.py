"""An ONNX file is checked before it is trusted (:class:`OnnxModel`): what it is
(missing, empty, truncated, a .pt2 program, a checkpoint, text), whether the
graph is the one its metadata describes, and whether its weights are the ones
exported (the hash :func:`export_onnx` records)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from pointsam.cli import main

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from pointsam.export import META_KEY, ExportError, OnnxModel  # noqa: E402

MN10_CHAIR = "modelnet10_pcd_1024/ModelNet10/pcd/chair/test/chair_0890.pcd"


@pytest.fixture(scope="module")
def shipped_onnx(tmp_path_factory):
    """``pointsam export --model`` of the shipped 10-class classifier."""
    path = tmp_path_factory.mktemp("onnx") / "cbam.onnx"
    assert main(["export", "--model", "pointnet2_lite_cbam_modelnet10", "--format",
                 "onnx", "--out", str(path)]) == 0
    return path


def _flip_weights(src, dst) -> str:
    """Change one value of the largest initializer (onnx package); its name."""
    proto = onnx.load(str(src))
    init = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
    a = numpy_helper.to_array(init).copy()
    a.flat[0] = -a.flat[0] + 0.5
    init.CopyFrom(numpy_helper.from_array(a, init.name))
    onnx.save(proto, str(dst))
    return init.name


def test_export_records_the_weights_hash(shipped_onnx):
    net = OnnxModel(shipped_onnx)
    digest = net.meta["weights_sha256"]
    assert len(digest) == 64 and digest == OnnxModel.weights_sha256(
        onnx.load(str(shipped_onnx)))


def test_changed_weights_are_detected(shipped_onnx, shared_data, tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    _flip_weights(shipped_onnx, bad)
    with pytest.raises(ExportError, match=r"its weights are not the ones exported "
                       r".*verify_weights=False"):
        OnnxModel(bad)
    assert OnnxModel(bad, verify_weights=False).meta["task"] == "cls"
    # through the command: one line, exit 2
    rc = main(["predict", "--onnx", str(bad), str(shared_data / MN10_CHAIR),
               "--out", str(tmp_path / "p.ply")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("pointsam: error: ") and "weights are not" in err[0]


def _not_onnx(tmp_path, shipped_onnx):
    """``{name: (path, expected message)}`` of files that are no ONNX model."""
    data = shipped_onnx.read_bytes()
    files = {
        "empty": (b"", r"is empty \(0 bytes\), not an ONNX model"),
        "truncated": (data[: len(data) // 2],
                      r"starts like an ONNX model but does not parse .* truncated"),
        "text": (b"ply\nformat ascii 1.0\n", r"is a text file \(it starts with "
                 r"'ply'\), not an ONNX model"),
        "pickle": (b"\x80\x04\x95", r"is a pickle .*not an ONNX model"),
        "binary": (b"\xff\xfe\x00garbage", r"is not an ONNX model \(not an ONNX "
                   r"protobuf"),
    }
    out = {}
    for name, (raw, msg) in files.items():
        p = tmp_path / f"{name}.onnx"
        p.write_bytes(raw)
        out[name] = (p, msg)
    pt2 = tmp_path / "program.onnx"  # a .pt2 archive's layout
    with zipfile.ZipFile(pt2, "w") as z:
        z.writestr("program/archive_format", "pt2")
        z.writestr("program/models/model.json", "{}")
    out["pt2"] = (pt2, r"is a \.pt2 program \(a torch\.export archive\), not an "
                  r"ONNX model: predict with --pt2")
    ckpt = tmp_path / "model.pt.onnx"  # torch.save's zip layout
    import torch

    torch.save({"model": {"w": torch.zeros(2)}}, ckpt)
    out["checkpoint"] = (ckpt, r"is a torch checkpoint \(a torch\.save zip "
                         r"archive\), not an ONNX model")
    return out


def test_a_file_that_is_no_onnx_model_is_named(shipped_onnx, tmp_path):
    for path, msg in _not_onnx(tmp_path, shipped_onnx).values():
        with pytest.raises(ExportError, match=msg):
            OnnxModel(path)
    with pytest.raises(FileNotFoundError, match="no such ONNX file"):
        OnnxModel(tmp_path / "missing.onnx")


def test_predict_onnx_errors_are_one_line(shipped_onnx, shared_data, tmp_path,
                                          capsys):
    files = _not_onnx(tmp_path, shipped_onnx)
    for name in ("empty", "truncated", "checkpoint"):
        path, msg = files[name]
        rc = main(["predict", "--onnx", str(path), str(shared_data / MN10_CHAIR),
                   "--out", str(tmp_path / "p.ply")])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, (name, err)
        assert err[0].startswith("pointsam: error: "), err


def _foreign(path, meta: dict, inputs: list[str], width: int) -> None:
    """A graph that is not pointsam's: ``logits`` [N, width] = a mean of ``pos``,
    carrying ``meta`` as its pointsam metadata."""
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3])
           for n in inputs]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", width])
    w = numpy_helper.from_array(np.ones((3, width), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", [inputs[0], "w"],
                                                ["logits"])],
                              "foreign", ins, [out], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(model, str(path))


def test_a_foreign_graph_with_copied_metadata_is_refused(shipped_onnx, tmp_path):
    meta = dict(OnnxModel(shipped_onnx).meta)  # 10 classes, pointsam's inputs
    assert meta["prediction"]["meta"]["num_classes"] == 10
    one = tmp_path / "one_column.onnx"  # the right inputs, one probability
    _foreign(one, meta, list(meta["inputs"]), 1)
    with pytest.raises(ExportError, match=r"its logits have 1 columns, but its "
                       r"metadata describes a cls model of 10 classes; the graph "
                       r"is not the one pointsam exported"):
        OnnxModel(one, verify_weights=False)  # refused by the graph check alone
    other = tmp_path / "other_inputs.onnx"
    _foreign(other, meta, ["points"], 10)
    with pytest.raises(ExportError, match=r"the graph takes inputs \['points'\], "
                       r"its metadata names \['pos'"):
        OnnxModel(other)
    same = tmp_path / "same_shape.onnx"  # right inputs and width: the hash says no
    _foreign(same, meta, list(meta["inputs"]), 10)
    with pytest.raises(ExportError, match="its weights are not the ones exported"):
        OnnxModel(same)
    # a Python export without the prediction record: model_args' classes
    bare = {k: v for k, v in meta.items() if k not in ("prediction",
                                                          "weights_sha256")}
    bare["model_args"] = {**bare["model_args"], "num_classes": 12}
    py = tmp_path / "python_export.onnx"
    _foreign(py, bare, list(meta["inputs"]), 1)
    with pytest.raises(ExportError, match=r"1 columns, .* of 12 classes"):
        OnnxModel(py)
