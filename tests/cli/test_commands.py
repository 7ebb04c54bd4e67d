"""The `pointsam` command: errors, demo --quick, eval and predict on checkpoints."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pointsam.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from _tiny import one_thread  # noqa: E402,F401  (autouse: one torch thread)

REPO = Path(__file__).resolve().parents[2]


def test_missing_config(capsys):
    assert main(["train", "no/such/config.yaml"]) == 2
    assert "config file not found: no/such/config.yaml" in capsys.readouterr().err


def test_unknown_key(capsys):
    cfg = str(REPO / "train" / "synthetic_shapes.yaml")
    assert main(["train", cfg, "--set", "train.epohcs=1"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'train.epohcs'" in err and "epochs" in err


def test_bad_value(capsys):
    cfg = str(REPO / "train" / "synthetic_shapes.yaml")
    assert main(["train", cfg, "--set", "optim.scheduler=warm"]) == 2
    assert "valid values: cosine, step, none" in capsys.readouterr().err


@pytest.mark.parametrize("override, message", [
    ("model.args.bogus=1", "model.args for pointnet2_lite_cls: .*bogus"),
    ("data.args.bogus=1", "data.args for SyntheticShapes: .*bogus"),
    ("optim.step_size=0", "optim.step_size must be >= 1"),
    ("optim.gamma=0", r"optim.gamma must be in \(0, 1\]"),
    ("optim.label_smoothing=2", r"optim.label_smoothing must be in \[0, 1\)"),
    ("train.task=semseg", "train.task=semseg does not fit data.name=synthetic_shapes"),
])
def test_bad_values_are_one_line_errors(capsys, tmp_path, override, message):
    import re

    cfg = str(REPO / "train" / "synthetic_shapes.yaml")
    rc = main(["train", cfg, "--set", override, "--set",
               f"train.out_dir={tmp_path / 'run'}", "--set", "train.epochs=1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("pointsam: error:"), err
    assert re.search(message, err), err


def test_cuda_on_a_cpu_machine(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = str(REPO / "train" / "synthetic_shapes.yaml")
    assert main(["train", cfg, "--set", "train.device=cuda", "--set",
                 f"train.out_dir={tmp_path / 'run'}"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_missing_dataset(capsys, tmp_path):
    pytest.importorskip("pointsam.data")
    cfg = str(REPO / "train" / "modelnet10_pointnet2_plain.yaml")
    missing = tmp_path / "nowhere"
    assert (
        main(
            [
                "train",
                cfg,
                "--set",
                f"data.root={missing}",
                "--set",
                f"train.out_dir={tmp_path / 'run'}",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "pointsam: error:" in err and str(missing) in err
    assert "datasets/README.md" in err


def test_checkpoint_errors(capsys, tmp_path):
    assert main(["eval", str(tmp_path / "none.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_module_entry_point():
    r = subprocess.run(
        [sys.executable, "-m", "pointsam", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0 and "demo" in r.stdout and "predict" in r.stdout


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    pytest.importorskip("pointsam.models")
    out = tmp_path_factory.mktemp("demo")
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main(["demo", "--quick", "--out", str(out)])
    finally:
        torch.set_num_threads(old)
    return rc, out


def test_demo_quick(demo_run, capsys):
    rc, out = demo_run
    assert rc == 0
    for f in ("best.pt", "last.pt", "metrics.csv", "summary.json"):
        assert (out / f).is_file()


def test_eval_and_predict_cls(demo_run, tmp_path, capsys):
    _, out = demo_run
    capsys.readouterr()
    assert (
        main(
            [
                "eval",
                str(out / "best.pt"),
                "--split",
                "test",
                "--votes",
                "2",
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    assert "test (48 samples, 2 vote(s))" in capsys.readouterr().out
    cloud = tmp_path / "cloud.npy"
    np.save(cloud, np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32))
    ply = tmp_path / "pred.ply"
    assert main(["predict", str(out / "best.pt"), str(cloud), "--out", str(ply)]) == 0
    text = capsys.readouterr().out
    assert "class:" in text and ply.is_file()
    header = ply.read_bytes().split(b"end_header")[0].decode()
    assert "element vertex 300" in header and "comment pointsam class" in header
    assert header.count("comment pointsam prob") == 12


def test_eval_val_is_the_selection_split(demo_run, capsys):
    import json

    _, out = demo_run
    best = json.loads((out / "summary.json").read_text())["best"]
    capsys.readouterr()
    assert main(["eval", str(out / "best.pt"), "--split", "val", "--json",
                 str(out / "val.json")]) == 0
    res = json.loads((out / "val.json").read_text())
    assert abs(res["oa"] - best["oa"]) < 1e-9  # best.pt was chosen on this split


def test_predict_needs_a_ply_name_and_refuses_odd_files(demo_run, tmp_path, capsys):
    import pickle

    _, out = demo_run
    cloud = tmp_path / "c.npy"
    np.save(cloud, np.zeros((20, 3), np.float32))
    assert main(["predict", str(out / "best.pt"), str(cloud), "--out",
                 str(tmp_path / "res.json")]) == 2
    assert "ending in .ply" in capsys.readouterr().err
    text = tmp_path / "text.pt"
    text.write_text("hello")
    assert main(["eval", str(text)]) == 2
    assert "not a torch.save archive" in capsys.readouterr().err
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    assert main(["eval", str(raw)]) == 2
    assert "never unpickles such files" in capsys.readouterr().err


def test_predict_semseg_writes_labels(tmp_path, capsys):
    pytest.importorskip("pointsam.models")
    from pointsam.engine.config import config_from_dict
    from pointsam.engine.trainer import Trainer

    cfg = config_from_dict(
        {
            "model": {"name": "pointnet2_lite_semseg"},
            "data": {
                "name": "synthetic_lidar",
                "num_points": 256,
                "batch_size": 2,
                "args": {"num_samples": 4, "beams": 8, "azimuth_steps": 90},
            },
            "train": {
                "epochs": 1,
                "max_batches": 1,
                "out_dir": str(tmp_path / "run"),
                "progress": False,
                "tensorboard": False,
                "chunk_points": 200,
            },
        }
    )
    Trainer(cfg).fit()
    cloud = tmp_path / "scan.npy"
    np.save(
        cloud, np.random.default_rng(0).uniform(-5, 5, size=(700, 4)).astype(np.float32)
    )
    ply = tmp_path / "scan.ply"
    capsys.readouterr()
    assert (
        main(
            [
                "predict",
                str(tmp_path / "run" / "best.pt"),
                str(cloud),
                "--out",
                str(ply),
            ]
        )
        == 0
    )
    from pointsam.viz import read_ply

    header = ply.read_bytes().split(b"end_header\n")[0]
    assert b"property int label" in header and b"element vertex 700" in header
    rec = read_ply(ply)
    assert b"property float confidence" in header
    assert len(rec["label"]) == 700
    assert rec["label"].min() >= 0 and rec["label"].max() < 8
    assert np.all((rec["confidence"] > 0) & (rec["confidence"] <= 1))
    assert np.allclose(rec["x"], np.load(cloud)[:, 0])


def test_viz_errors_come_back_as_exit_code_2(capsys, tmp_path):
    assert (
        main(["viz", str(tmp_path / "none.pt"), "x.ply", "--out", str(tmp_path)])
        == 2
    )
    assert "checkpoint not found" in capsys.readouterr().err


def test_bench_list(capsys):
    if not any((REPO / "bench").glob("*.py")):
        pytest.skip("no bench/ scripts")
    assert main(["bench", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert names and all((REPO / "bench" / f"{n}.py").is_file() for n in names)
    assert main(["bench", "no_such_bench"]) == 2
    assert "unknown bench" in capsys.readouterr().err
