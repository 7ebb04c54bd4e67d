"""End-to-end runs of the trainer: tiny engine runs and real config runs."""

import json
import sys
from pathlib import Path

import pytest
import torch

from pointsam.engine.checkpoint import CheckpointError, load_checkpoint
from pointsam.engine.config import config_from_dict, config_to_dict
from pointsam.engine.trainer import Trainer, split_train_val

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import one_thread, tiny_setup  # noqa: E402,F401


def _cfg(out, task, epochs=2, **train):
    return config_from_dict(
        {
            "train": {
                "epochs": epochs,
                "out_dir": str(out),
                "progress": False,
                "task": task,
                "tensorboard": False,
                **train,
            },
            "data": {"batch_size": 4},
            "optim": {"lr": 0.01},
        }
    )


@pytest.mark.parametrize("task", ["cls", "partseg", "semseg"])
def test_tiny_run_writes_everything(tmp_path, task):
    model, ds, t = tiny_setup(task)
    extra = {"voxel_size": 0.3, "chunk_points": 64} if task == "semseg" else {}
    cfg = _cfg(tmp_path, task, **extra)
    s = Trainer(cfg, model=model, datasets=ds, task=t).fit()
    for f in ("best.pt", "last.pt", "metrics.csv", "summary.json"):
        assert (tmp_path / f).is_file(), f
    assert len(s["history"]) == 2 and s["test"]["evaluated_once"]
    key = t.score_key
    assert 0.0 <= s["test"][key] <= 1.0 and 0.0 <= s["best"][key] <= 1.0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seed"] == 0 and summary["versions"]["torch"] == torch.__version__
    assert summary["versions"]["pointsam"] and summary["machine"]["platform"]
    assert (
        summary["machine"]["cpu_count"] >= 1
        and summary["config"]["train"]["task"] == task
    )
    rows = (tmp_path / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and f"val_{key}" in rows[0]
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck["epoch"] == 2 and ck["meta"]["task"] == task


def test_tiny_cls_learns(tmp_path):
    model, ds, t = tiny_setup("cls")
    cfg = _cfg(tmp_path, "cls", epochs=12)
    s = Trainer(cfg, model=model, datasets=ds, task=t).fit()
    assert s["history"][-1]["train_loss"] < s["history"][0]["train_loss"]
    assert s["test"]["oa"] > 0.5  # chance is 1/3


def _strip(history):
    return [{k: v for k, v in r.items() if k != "epoch_time_s"} for r in history]


def test_resume_equals_uninterrupted(tmp_path):
    m, ds, t = tiny_setup("cls")
    full = Trainer(
        _cfg(tmp_path / "a", "cls", epochs=3), model=m, datasets=ds, task=t
    ).fit()
    m, ds, t = tiny_setup("cls")
    cfg_b = _cfg(tmp_path / "b", "cls", epochs=3)
    Trainer(cfg_b, model=m, datasets=ds, task=t).fit(stop_after=1)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    torch.manual_seed(123)  # the resumed process starts with another RNG state
    m, ds, t = tiny_setup("cls", seed=99)  # and other initial weights
    resumed = Trainer(cfg_b, model=m, datasets=ds, task=t, resume=True).fit()
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _strip(full["history"]) == _strip(resumed["history"])
    assert full["test"] == resumed["test"]
    csv_a = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    csv_b = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert len(csv_a) == len(csv_b) == 4


def test_split_train_val_fixed_and_disjoint():
    a = split_train_val(50, 0.2, 0)
    assert a == split_train_val(50, 0.2, 0) and a != split_train_val(50, 0.2, 1)
    assert not set(a[0]) & set(a[1]) and len(a[1]) == 10


# ---------------------------------------------------------------- real configs
def _real(tmp_path, **d):
    pytest.importorskip("pointsam.models")
    return config_from_dict(
        {
            **d,
            "train": {
                "epochs": 1,
                "max_batches": 2,
                "out_dir": str(tmp_path),
                "progress": False,
                "tensorboard": False,
                **d.get("train", {}),
            },
        }
    )


def test_real_cls_synthetic_shapes(tmp_path):
    cfg = _real(
        tmp_path,
        model={"name": "pointnet2_lite_cls", "args": {"attention": "cbam"}},
        data={
            "name": "synthetic_shapes",
            "num_points": 96,
            "batch_size": 4,
            "args": {"num_samples": 24},
        },
    )
    s = Trainer(cfg).fit()
    assert s["task"] == "cls" and 0 <= s["test"]["oa"] <= 1
    assert len(s["test"]["confusion"]) == 12


def test_real_partseg_synthetic_parts(tmp_path):
    cfg = _real(
        tmp_path,
        model={"name": "pointnet2_lite_partseg"},
        data={
            "name": "synthetic_parts",
            "num_points": 128,
            "batch_size": 4,
            "args": {"num_samples": 20, "num_points": 256},
        },
    )
    s = Trainer(cfg).fit()
    assert s["task"] == "partseg" and 0 <= s["test"]["instance_miou"] <= 1


def test_real_semseg_synthetic_lidar_whole_scan(tmp_path):
    cfg = _real(
        tmp_path,
        model={"name": "pointnet2_lite_semseg"},
        data={
            "name": "synthetic_lidar",
            "num_points": 512,
            "batch_size": 2,
            "args": {"num_samples": 6, "beams": 8, "azimuth_steps": 180},
        },
        train={"chunk_points": 400, "voxel_size": 0.2},
    )
    s = Trainer(cfg).fit()
    assert s["task"] == "semseg" and len(s["test"]["iou"]) == 8


def test_resume_refuses_another_model_config(tmp_path):
    m, ds, t = tiny_setup("cls")
    cfg = _cfg(tmp_path, "cls", epochs=2)
    Trainer(cfg, model=m, datasets=ds, task=t).fit(stop_after=1)
    other = config_from_dict({**config_to_dict(cfg), "model": {"name": "dgcnn_cls"}})
    m, ds, t = tiny_setup("cls")
    with pytest.raises(CheckpointError, match="changes model.name"):
        Trainer(other, model=m, datasets=ds, task=t, resume=True)
    # a longer schedule or another learning rate would not continue the run
    d = config_to_dict(cfg)
    d["train"]["epochs"], d["optim"]["lr"] = 5, 0.1
    m, ds, t = tiny_setup("cls")
    with pytest.raises(CheckpointError, match=r"optim.lr.*train.epochs \(2 -> 5\)"):
        Trainer(config_from_dict(d), model=m, datasets=ds, task=t, resume=True)
    # what does not change the trajectory may differ
    d = config_to_dict(cfg)
    d["data"]["num_workers"], d["train"]["progress"] = 0, False
    m, ds, t = tiny_setup("cls")
    tr = Trainer(config_from_dict(d), model=m, datasets=ds, task=t, resume=True)
    assert tr.epoch == 1
