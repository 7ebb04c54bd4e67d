"""A 2-process DDP run (gloo, CPU) equals a single-process run within tolerance."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _tiny import one_thread  # noqa: E402,F401  (autouse: one torch thread)


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        env.pop(k, None)
    return env


def test_ddp_two_processes_match_single(tmp_path):
    pytest.importorskip("torch.distributed")
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    script = str(HERE / "_ddp_run.py")
    sys.path.insert(0, str(HERE))
    from _ddp_run import run

    run(str(single))  # single process, in this interpreter
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            script,
            str(ddp),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    a = json.loads((single / "summary.json").read_text())
    b = json.loads((ddp / "summary.json").read_text())
    assert a["world_size"] == 1 and b["world_size"] == 2
    assert b["dataset_sizes"] == a["dataset_sizes"]
    for ra, rb in zip(a["history"], b["history"], strict=True):
        assert rb["train_loss"] == pytest.approx(ra["train_loss"], abs=1e-4)
        assert rb["val_loss"] == pytest.approx(ra["val_loss"], abs=1e-4)
        assert rb["val_oa"] == pytest.approx(ra["val_oa"], abs=1e-6)
    assert b["test"]["loss"] == pytest.approx(a["test"]["loss"], abs=1e-4)
    assert b["test"]["confusion"] == a["test"]["confusion"]  # every sample once
    assert sum(map(sum, b["test"]["confusion"])) == 9
    leftovers = [p.name for p in ddp.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers


@pytest.mark.slow
def test_torchrun_module_entry_point(tmp_path):
    """`torchrun -m pointsam train CONFIG` with a real model (gloo, 2 ranks)."""
    pytest.importorskip("pointsam.models")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {name: pointnet2_lite_cls, args: {attention: cbam}}\n"
        "data: {name: synthetic_shapes, num_points: 128, batch_size: 8,"
        " args: {num_samples: 48}}\n"
        f"train: {{epochs: 1, max_batches: 2, out_dir: {tmp_path / 'run'},"
        " progress: false, tensorboard: false}\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "pointsam",
            "train",
            str(cfg),
        ],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["world_size"] == 2 and sum(map(sum, s["test"]["confusion"])) == 16
