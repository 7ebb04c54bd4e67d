"""Run-directory faults: the lock, overwrite, writability, disk full, kill -9 + resume,
a diverged loss, errors from DataLoader workers, weights of another model."""

import errno
import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pointsam.cli import main
from pointsam.data import CloudFormatError
from pointsam.engine import rundir
from pointsam.engine.checkpoint import CheckpointError, load_checkpoint
from pointsam.engine.config import config_from_dict
from pointsam.engine.rundir import RunDirError, acquire_lock, check_fresh
from pointsam.engine.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import TinyNet, TinyShapes, one_thread, tiny_setup  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable

TINY_YAML = """\
model:
  name: pointnet2_lite_cls
data:
  name: synthetic_shapes
  num_points: 64
  batch_size: 8
  args: {{num_samples: 48, num_points: 128}}
optim: {{lr: 0.003}}
train:
  epochs: {epochs}
  out_dir: {out}
  progress: false
  tensorboard: false
  num_threads: 1
"""


def tiny_config(tmp_path, out, epochs=1, name="tiny.yaml"):
    p = tmp_path / name
    p.write_text(TINY_YAML.format(epochs=epochs, out=out))
    return str(p)


def _cfg(out, epochs=2, **train):
    return config_from_dict({
        "train": {"epochs": epochs, "out_dir": str(out), "progress": False,
                  "task": "cls", "tensorboard": False, **train},
        "data": {"batch_size": 4}, "optim": {"lr": 0.01}})


def _free(lock_file):
    """Whether another open file description can take the lock now."""
    fd = os.open(lock_file, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


# ------------------------------------------------------------------ the lock
def test_a_second_process_into_a_locked_run_dir_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [PY, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(out / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, b'%d\\n' % os.getpid())\n"
         "print('locked', flush=True)\ntime.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc = main(["train", tiny_config(tmp_path, out)])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1, err
        assert f"pointsam: error: {out} is in use by process {holder.pid}" in err
    finally:
        holder.kill()  # like kill -9: the kernel releases the lock
        holder.wait()
    lock = acquire_lock(out)  # a crashed holder leaves no stale lock
    lock.release()


def test_lock_is_held_during_the_run_and_released_after(tmp_path):
    m, ds, t = tiny_setup("cls")
    tr = Trainer(_cfg(tmp_path, epochs=1), model=m, datasets=ds, task=t)
    assert not _free(tmp_path / ".lock")
    assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
    tr.fit()
    assert _free(tmp_path / ".lock")


def test_lock_is_released_when_the_run_fails(tmp_path):
    m, ds, t = tiny_setup("cls")
    with pytest.raises(RunDirError):  # refused after taking the lock
        (tmp_path / "best.pt").write_bytes(b"x")
        Trainer(_cfg(tmp_path), model=m, datasets=ds, task=t, overwrite=False)
    assert _free(tmp_path / ".lock")


# -------------------------------------------------------- overwrite, config
def test_new_run_into_a_finished_run_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    cfg = tiny_config(tmp_path, out)
    assert main(["train", cfg]) == 0
    before = (out / "best.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", cfg]) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds a run (best.pt, last.pt, metrics.csv, " \
           "summary.json)" in err and "--overwrite" in err and "--resume" in err
    assert (out / "best.pt").read_bytes() == before  # untouched
    assert main(["train", cfg, "--overwrite", "--set", "train.seed=5"]) == 0
    assert load_checkpoint(out / "best.pt")["config"]["train"]["seed"] == 5
    assert main(["train", cfg, "--resume", "--overwrite"]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_overwrite_removes_the_previous_outputs(tmp_path):
    for f in ("best.pt", "metrics.csv"):
        (tmp_path / f).write_text("old")
    (tmp_path / "tb").mkdir()
    assert check_fresh(tmp_path, resume=True, overwrite=False) == [
        "best.pt", "metrics.csv", "tb"]
    assert check_fresh(tmp_path, resume=False, overwrite=True) == [
        "best.pt", "metrics.csv", "tb"]
    assert not any((tmp_path / f).exists() for f in ("best.pt", "metrics.csv", "tb"))


def test_empty_config_is_refused(tmp_path, capsys):
    p = tmp_path / "empty.yaml"
    p.write_text("# nothing yet\n")
    assert main(["train", str(p)]) == 2
    err = capsys.readouterr().err
    assert f"pointsam: error: {p} is empty" in err and err.count("\n") == 1


# --------------------------------------------------------------- writability
def test_out_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    f = tmp_path / "taken"
    f.write_text("a file")
    assert main(["train", tiny_config(tmp_path, f)]) == 2
    err = capsys.readouterr().err
    assert err == f"pointsam: error: train.out_dir {f} exists and is not a folder; " \
                  "give a folder path (it is created if missing)\n"


def test_read_only_out_dir_is_one_line(tmp_path, capsys, monkeypatch):
    def ro(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(rundir.tempfile, "mkstemp", ro)  # root ignores chmod
    assert main(["train", tiny_config(tmp_path, tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert err == (f"pointsam: error: train.out_dir {tmp_path / 'ro'} is not "
                   "writable: Read-only file system\n")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into r-x folders")
def test_read_only_out_dir_for_real(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(RunDirError, match="is not writable: Permission denied"):
        rundir.check_writable(ro)


# ----------------------------------------------------------------- disk full
def test_disk_full_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from pointsam.engine import checkpoint

    m, ds, t = tiny_setup("cls")
    tr = Trainer(_cfg(tmp_path, epochs=3), model=m, datasets=ds, task=t)
    tr.fit(stop_after=1)
    good = (tmp_path / "last.pt").read_bytes()
    real_save = torch.save

    def full(obj, f, *a, **k):
        f.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    with pytest.raises(CheckpointError, match=(
            f"no space left on device while writing {tmp_path / 'last.pt'} "
            r"\(the previous last.pt is kept\)")):
        tr.fit()
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert (tmp_path / "last.pt").read_bytes() == good
    assert not list(tmp_path.glob(".*.tmp"))  # the partial file is gone
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1  # resumable
    assert _free(tmp_path / ".lock")


def test_torch_write_failure_reads_as_disk_full(tmp_path, monkeypatch):
    from pointsam.engine import checkpoint

    def enforce(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . "
                           "PytorchStreamWriter failed writing file data/0: "
                           "file write failed")

    monkeypatch.setattr(checkpoint.torch, "save", enforce)
    with pytest.raises(CheckpointError, match="no space left on device while "
                       "writing .*ck.pt \\(no previous ck.pt existed\\)"):
        checkpoint.save_checkpoint({"a": 1}, tmp_path / "ck.pt")


# --------------------------------------------------------- kill -9 + resume
def test_kill_9_mid_epoch_then_resume_equals_uninterrupted(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", tiny_config(tmp_path, a, epochs=3, name="a.yaml")]) == 0
    cfg_b = tiny_config(tmp_path, b, epochs=3, name="b.yaml")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([PY, "-m", "pointsam", "train", cfg_b], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not (b / "last.pt").exists() and proc.poll() is None:
            assert time.time() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # during epoch 2
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (b / "summary.json").exists()  # it did not finish
    assert load_checkpoint(b / "last.pt")["epoch"] < 3
    capsys.readouterr()
    assert main(["train", cfg_b, "--resume"]) == 0  # the dead run's lock is gone
    ca, cb = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert ca["model"].keys() == cb["model"].keys()
    assert all(torch.equal(ca["model"][k], cb["model"][k]) for k in ca["model"])
    strip = [{k: v for k, v in r.items() if k != "epoch_time_s"}
             for r in ca["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "epoch_time_s"}
                     for r in cb["history"]]


# -------------------------------------------------- diverged loss, workers
def test_diverged_loss_is_one_line_naming_epoch_step_and_what_to_try(
        tmp_path, capsys):
    cfg = tiny_config(tmp_path, tmp_path / "run")
    assert main(["train", cfg, "--set", "optim.lr=1e6"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.splitlines()[-1]  # after the "[pointsam] ... -> OUT_DIR" line
    assert last.startswith("pointsam: error: training diverged: the loss is nan at "
                           "epoch 1, step "), err
    assert "try a smaller optim.lr (now 1e+06)" in last


class _Corrupt(TinyShapes):
    def __getitem__(self, i):
        if i == 3:
            raise CloudFormatError("/data/scan_03.pcd: truncated PCD, 100 points "
                                   "need 1200 bytes after the header, found 7")
        return super().__getitem__(i)


def test_worker_error_comes_back_with_its_own_message(tmp_path):
    torch.manual_seed(0)
    ds = {"train": _Corrupt(8), "val": TinyShapes(3), "test": TinyShapes(3)}
    from pointsam.engine.tasks import ClsTask

    cfg = config_from_dict({
        "train": {"epochs": 1, "out_dir": str(tmp_path), "progress": False,
                  "task": "cls", "tensorboard": False},
        "data": {"batch_size": 4, "num_workers": 1}})
    tr = Trainer(cfg, model=TinyNet(3), datasets=ds, task=ClsTask(3))
    with pytest.raises(CloudFormatError) as e:
        tr.fit()
    assert str(e.value) == ("/data/scan_03.pcd: truncated PCD, 100 points need "
                            "1200 bytes after the header, found 7")


def test_cli_prints_a_worker_error_as_one_line():
    from pointsam.engine._guards import one_line

    wrapped = CloudFormatError(
        "Caught CloudFormatError in DataLoader worker process 0.\n"
        "Original Traceback (most recent call last):\n  File \"x.py\", line 1\n"
        "pointsam.data._common.CloudFormatError: /d/a.pcd: empty cloud (0 points)\n")
    assert one_line(wrapped) == "/d/a.pcd: empty cloud (0 points)"


def test_resume_with_another_model_names_both(tmp_path):
    m, ds, t = tiny_setup("cls")
    Trainer(_cfg(tmp_path, epochs=2), model=m, datasets=ds, task=t).fit(
        stop_after=1)
    with pytest.raises(CheckpointError, match=r"do not fit the model built here"):
        Trainer(_cfg(tmp_path, epochs=2), model=TinyNet(3, hidden=8), datasets=ds,
                task=t, resume=True)
