"""`pointsam models` and `--model NAME` in predict/viz: shipped models, no training."""

import sys
from pathlib import Path

import numpy as np

from pointsam.cli import main
from pointsam.viz import read_ply

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from _tiny import one_thread  # noqa: E402,F401  (autouse: one torch thread)

LIDAR = "pointnet2_lite_lidarseg_kitti"
MODELNET = "pointnet2_lite_cbam_modelnet10"
KITTI = "kitti_object_sample/training/velodyne/004139.bin"


def test_models_lists_the_zoo(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert LIDAR in out and MODELNET in out and "MB" in out


def test_models_name_prints_the_card(capsys):
    assert main(["models", LIDAR]) == 0
    out = capsys.readouterr().out
    assert "Licence" in out and "CC BY-NC-SA" in out and LIDAR in out


def test_unknown_model_name_lists_the_names(capsys, tmp_path):
    assert main(["models", "nope"]) == 2
    assert "unknown pretrained model 'nope'" in capsys.readouterr().err
    cloud = tmp_path / "c.xyz"
    np.savetxt(cloud, np.random.rand(50, 3))
    assert main(["predict", "--model", "nope", str(cloud), "--out",
                 str(tmp_path / "o.ply")]) == 2
    err = capsys.readouterr().err
    assert LIDAR in err and MODELNET in err
    assert not (tmp_path / "o.ply").exists()


def test_checkpoint_and_model_are_exclusive(capsys, tmp_path):
    cloud = tmp_path / "c.xyz"
    np.savetxt(cloud, np.random.rand(50, 3))
    assert main(["predict", "ck.pt", str(cloud), "--model", LIDAR, "--out",
                 str(tmp_path / "o.ply")]) == 2
    assert "give one of CHECKPOINT, --model NAME, --onnx" in capsys.readouterr().err


def test_predict_a_real_kitti_scan_with_the_shipped_model(tmp_path, shared_data):
    scan = np.fromfile(shared_data / KITTI, dtype=np.float32).reshape(-1, 4)
    near = scan[np.linalg.norm(scan[:, :2], axis=1) < 15]  # ~50k points near the car
    part = tmp_path / "near.bin"
    near.tofile(part)
    out = tmp_path / "pred.ply"
    assert main(["predict", "--model", LIDAR, str(part), "--out", str(out)]) == 0
    ply = read_ply(out)
    probs = np.stack([ply[k] for k in ply if k.startswith("prob_")], 1)  # [N, 19]
    assert probs.shape == (len(near), 19)
    assert np.allclose(probs.sum(1), 1, atol=1e-3)
    assert (probs.argmax(1) == ply["label"]).all()
    counts = np.bincount(ply["label"], minlength=19)
    assert counts[8] > 0.2 * len(near)  # road is the most common class near the car


def test_predict_classifies_with_the_modelnet_model(tmp_path, shared_data, capsys):
    shape = (shared_data / "modelnet10_pcd_1024/ModelNet10/pcd/chair/test/"
             "chair_0890.pcd")
    out = tmp_path / "chair.ply"
    assert main(["predict", "--model", MODELNET, str(shape), "--out", str(out)]) == 0
    assert "class: chair" in capsys.readouterr().out


def test_bad_scans_get_one_error_line_and_no_file(tmp_path, capsys):
    out = tmp_path / "o.ply"
    bad = tmp_path / "bad.bin"
    np.arange(10, dtype=np.float32).tofile(bad)  # not a multiple of 4 columns
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    big = tmp_path / "big.bin"
    np.random.rand(1000, 4).astype(np.float32).tofile(big)
    for args, fragment in (
        ([str(bad)], "not a multiple of 16"),
        ([str(empty)], "empty file"),
        ([str(big), "--max-points", "500"], "1,000 points is more than --max-points"),
    ):
        assert main(["predict", "--model", LIDAR, *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("pointsam: error:") and fragment in err, err
        assert not out.exists()
