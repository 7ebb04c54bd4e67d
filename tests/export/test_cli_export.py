"""``pointsam export`` and ``pointsam predict --onnx`` on a trained checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointsam.cli import main


@pytest.fixture(scope="module")
def semseg_ckpt(tmp_path_factory):
    from pointsam.engine.config import config_from_dict
    from pointsam.engine.trainer import Trainer

    out = tmp_path_factory.mktemp("run")
    cfg = config_from_dict({
        "model": {"name": "pointnet2_lite_semseg",
                  "args": {"attention": "local_global"}},
        "data": {"name": "synthetic_lidar", "num_points": 256, "batch_size": 2,
                 "args": {"num_samples": 4, "beams": 8, "azimuth_steps": 90}},
        "train": {"epochs": 1, "max_batches": 1, "out_dir": str(out),
                  "progress": False, "tensorboard": False, "chunk_points": 200},
    })
    Trainer(cfg).fit()
    return out / "best.pt"


def test_export_onnx_then_predict_onnx(semseg_ckpt, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from pointsam.engine.predict import load_trained
    from pointsam.viz import read_ply

    onnx_path = tmp_path / "m.onnx"
    assert main(["export", str(semseg_ckpt), "--format", "onnx", "--out",
                 str(onnx_path), "--with-attention"]) == 0
    msg = capsys.readouterr().out
    assert "wrote" in msg and "logits" in msg and "attn.backbone.stages.0.attn" in msg
    cloud = tmp_path / "scan.npy"
    pts = np.random.default_rng(0).uniform(-5, 5, size=(900, 4)).astype(np.float32)
    np.save(cloud, pts)
    ply = tmp_path / "scan.ply"
    assert main(["predict", "--onnx", str(onnx_path), str(cloud), "--out",
                 str(ply)]) == 0
    rec = read_ply(ply)
    model, task, cfg, _ = load_trained(semseg_ckpt)
    # the file records the checkpoint's whole-scan settings (chunks of 200)
    from pointsam.export import OnnxModel

    record = OnnxModel(onnx_path).meta["prediction"]
    assert record["config"]["train"]["chunk_points"] == 200
    from torch_geometric.data import Data

    from pointsam.engine.predict import predict_cloud

    ref = predict_cloud(model, task, cfg, Data(pos=torch.from_numpy(pts[:, :3])))
    assert len(rec["label"]) == 900
    # the same chunks as eager predict: argmax of logits equal to 1e-4
    assert (rec["label"] == ref["labels"].numpy()).mean() > 0.99


@pytest.mark.dataset
def test_shipped_lidar_model_exports_and_predicts_like_eager(shared_data, tmp_path,
                                                            capsys):
    """The shipped KITTI model: `export --model`, then `predict --onnx` on the real
    123k-point KITTI scan voxelises and chunks as eager `predict --model` does."""
    pytest.importorskip("onnxruntime")
    from pointsam.viz import read_ply

    scan = shared_data / "kitti_object_sample" / "training" / "velodyne" / "004139.bin"
    if not scan.is_file():
        pytest.skip(f"{scan} is not there")
    onnx_path = tmp_path / "kitti.onnx"
    assert main(["export", "--model", "pointnet2_lite_lidarseg_kitti", "--out",
                 str(onnx_path)]) == 0
    assert "pointnet2_lite_lidarseg" in capsys.readouterr().out
    got, ref = tmp_path / "onnx.ply", tmp_path / "eager.ply"
    assert main(["predict", "--onnx", str(onnx_path), str(scan), "--out",
                 str(got)]) == 0
    assert main(["predict", "--model", "pointnet2_lite_lidarseg_kitti", str(scan),
                 "--out", str(ref)]) == 0
    a, b = read_ply(got), read_ply(ref)
    assert len(a["label"]) == len(b["label"]) == 123266
    assert (a["label"] == b["label"]).mean() > 0.999


def test_export_needs_one_source(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path / "m.onnx")]) == 2
    assert "CHECKPOINT or --model NAME" in capsys.readouterr().err


def test_export_pt2_writes_a_loadable_program(semseg_ckpt, tmp_path, capsys):
    from pointsam.export import load_program, plan_inputs

    out = tmp_path / "m.pt2"
    assert main(["export", str(semseg_ckpt), "--format", "pt2", "--out",
                 str(out)]) == 0
    ep, meta = load_program(out)
    assert meta["model_name"] == "pointnet2_lite_semseg"
    assert meta["model_args"]["attention"] == "local_global"
    from pointsam.engine.predict import load_trained

    model, *_ = load_trained(semseg_ckpt)
    pos = torch.rand(500, 3) * 10
    _, tensors = plan_inputs(model, pos)
    with torch.no_grad():
        assert (ep.module()(*tensors) - model(pos=pos)).abs().max() < 1e-4


def test_export_errors_are_one_line(semseg_ckpt, tmp_path, capsys):
    assert main(["export", str(semseg_ckpt), "--format", "pt2", "--out",
                 str(tmp_path / "m.onnx")]) == 2
    assert "written as *.pt2" in capsys.readouterr().err
    assert main(["predict", "--onnx", str(tmp_path / "none.onnx"),
                 str(tmp_path / "x.npy"), "extra", "--out",
                 str(tmp_path / "o.ply")]) == 2
    assert "give one of CHECKPOINT, --model NAME, --onnx" in capsys.readouterr().err


def test_end_to_end_flags_go_together(tmp_path, capsys):
    ckpt, out = str(tmp_path / "none.pt"), str(tmp_path / "m.onnx")
    assert main(["export", ckpt, "--out", out, "--end-to-end"]) == 2
    assert "--end-to-end needs --num-points" in capsys.readouterr().err
    assert main(["export", ckpt, "--out", out, "--num-points", "1024"]) == 2
    assert "add --end-to-end" in capsys.readouterr().err


@pytest.mark.slow  # about 70 s: an end-to-end export and two predictions
def test_export_end_to_end_then_predict_onnx(semseg_ckpt, tmp_path, capsys):
    """``--end-to-end --num-points N``: the graph takes the raw cloud; predict
    --onnx feeds it and refuses a segmentation cloud of another size."""
    pytest.importorskip("onnxruntime")
    from pointsam.engine.predict import load_trained
    from pointsam.export import fixed_size_plan
    from pointsam.viz import read_ply

    onnx_path = tmp_path / "e2e.onnx"
    assert main(["export", str(semseg_ckpt), "--format", "onnx", "--out",
                 str(onnx_path), "--end-to-end", "--num-points", "400"]) == 0
    assert "end to end, clouds of 400 points" in capsys.readouterr().out
    pts = np.random.default_rng(1).uniform(-5, 5, size=(400, 4)).astype(np.float32)
    cloud = tmp_path / "scan.npy"
    np.save(cloud, pts)
    ply = tmp_path / "scan.ply"
    assert main(["predict", "--onnx", str(onnx_path), str(cloud), "--out",
                 str(ply)]) == 0
    model, *_ = load_trained(semseg_ckpt)
    pos = torch.from_numpy(pts[:, :3]).unsqueeze(0)
    with torch.no_grad():
        flat, _, plan = fixed_size_plan(model, pos)
        ref = model.network(None, flat, plan).argmax(-1).numpy()
    assert (read_ply(ply)["label"] == ref).mean() > 0.99
    np.save(cloud, pts[:300])
    assert main(["predict", "--onnx", str(onnx_path), str(cloud), "--out",
                 str(ply)]) == 2
    err = capsys.readouterr().err
    assert "exactly 400 points" in err and "--num-points 300" in err
