"""train.time_budget_s: stop before an epoch that would overrun, exact over resumes.

A fake clock advances 10 s per training epoch (and nothing elsewhere), so the
stopping epoch is known exactly: with a 35 s budget, epoch 3 starts at 20 s
(20 + mean 10 <= 35) and epoch 4 would start at 30 s (30 + 10 > 35).
"""

import json
import sys
from pathlib import Path

import pytest
import torch

from pointsam.engine.checkpoint import load_checkpoint, save_checkpoint
from pointsam.engine.config import config_from_dict
from pointsam.engine.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import one_thread, tiny_setup  # noqa: E402,F401


def _cfg(out, epochs=6, budget=0.0):
    return config_from_dict({
        "train": {"epochs": epochs, "out_dir": str(out), "progress": False,
                  "task": "cls", "tensorboard": False, "time_budget_s": budget},
        "data": {"batch_size": 4},
        "optim": {"lr": 0.01},
    })


@pytest.fixture
def fake_clock(monkeypatch):
    """Trainer._clock reads a counter that each train_epoch advances by 10 s."""
    now = [1000.0]
    monkeypatch.setattr(Trainer, "_clock", staticmethod(lambda: now[0]))
    real = Trainer.train_epoch

    def epoch(self):
        now[0] += 10.0
        return real(self)

    monkeypatch.setattr(Trainer, "train_epoch", epoch)
    return now


def _run(out, budget, epochs=6, resume=False, stop_after=None):
    m, ds, t = tiny_setup("cls")
    tr = Trainer(_cfg(out, epochs, budget), model=m, datasets=ds, task=t,
                 resume=resume)
    return tr.fit(stop_after=stop_after)


def test_budget_stops_before_an_overrunning_epoch(tmp_path, fake_clock):
    s = _run(tmp_path, budget=35.0)
    assert s["epochs_run"] == 3 and len(s["history"]) == 3
    assert s["stopped_by_time_budget"] is True
    assert s["train_time_s"] == pytest.approx(30.0)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["time_budget_s"] == 35.0 and on_disk["epochs_run"] == 3
    assert on_disk["config"]["train"]["time_budget_s"] == 35.0
    # selection on validation among the epochs run; the test split evaluated once
    assert 1 <= on_disk["best"]["epoch"] <= 3 and on_disk["test"]["evaluated_once"]
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 3


def test_no_budget_runs_every_epoch(tmp_path, fake_clock):
    s = _run(tmp_path, budget=0.0, epochs=4)
    assert s["epochs_run"] == 4 and s["stopped_by_time_budget"] is False
    assert s["time_budget_s"] == 0.0 and s["train_time_s"] == pytest.approx(40.0)


def test_a_generous_budget_is_not_reported_as_stopping(tmp_path, fake_clock):
    s = _run(tmp_path, budget=1e6, epochs=3)
    assert s["epochs_run"] == 3 and s["stopped_by_time_budget"] is False


def test_tiny_budget_runs_exactly_one_epoch_on_the_real_clock(tmp_path):
    s = _run(tmp_path, budget=1e-6, epochs=20)
    assert s["epochs_run"] == 1 and s["stopped_by_time_budget"] is True
    assert s["train_time_s"] > 0 and "oa" in s["test"]


def test_resume_counts_time_saved_in_the_checkpoint(tmp_path, fake_clock):
    full = _run(tmp_path / "a", budget=35.0)
    _run(tmp_path / "b", budget=35.0, stop_after=2)  # "killed" after epoch 2
    ck = load_checkpoint(tmp_path / "b" / "last.pt")
    assert ck["epoch"] == 2 and ck["train_time_s"] == pytest.approx(20.0)
    fake_clock[0] = 5e6  # a new process: its clock starts elsewhere
    torch.manual_seed(123)
    resumed = _run(tmp_path / "b", budget=35.0, resume=True)
    assert resumed["epochs_run"] == 3 and resumed["stopped_by_time_budget"]
    assert resumed["train_time_s"] == pytest.approx(30.0)
    a = load_checkpoint(tmp_path / "a" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "b" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert full["test"] == resumed["test"]


def test_resume_after_the_budget_ran_out_trains_nothing(tmp_path, fake_clock):
    # killed after the last budgeted epoch, before the summary: no extra epoch
    _run(tmp_path, budget=0.0, epochs=6, stop_after=3)
    ck = load_checkpoint(tmp_path / "last.pt")
    ck["train_time_s"] = 100.0  # as if those 3 epochs had taken 100 s
    save_checkpoint(ck, tmp_path / "last.pt")
    s = _run(tmp_path, budget=120.0, epochs=6, resume=True)
    assert s["epochs_run"] == 3 and s["stopped_by_time_budget"] is True
    assert s["train_time_s"] == pytest.approx(100.0)


def test_negative_budget_is_a_config_error():
    from pointsam.engine.config import ConfigError

    with pytest.raises(ConfigError, match="train.time_budget_s must be >= 0"):
        _cfg("x", budget=-1.0)
