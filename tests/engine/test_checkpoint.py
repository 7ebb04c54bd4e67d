"""Atomic checkpoints, weights_only loading, RNG capture."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from pointsam.engine.checkpoint import (
    CheckpointError,
    get_rng_state,
    load_checkpoint,
    save_checkpoint,
    set_rng_state,
)


def _state(v: float) -> dict:
    return {
        "format": "pointsam-checkpoint",
        "version": 1,
        "epoch": int(v),
        "model": {"w": torch.full((4,), v)},
        "history": [{"loss": v}],
    }


def test_roundtrip_and_no_temp_left(tmp_path):
    p = save_checkpoint(_state(1.0), tmp_path / "ck.pt")
    s = load_checkpoint(p)
    assert torch.equal(s["model"]["w"], torch.ones(4)) and s["history"] == [
        {"loss": 1.0}
    ]
    assert sorted(os.listdir(tmp_path)) == ["ck.pt"]


def test_checkpoint_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = save_checkpoint(_state(1.0), tmp_path / "ck.pt")
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == 0o644  # like the logs, not mkstemp's 0600


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_pickled_code_is_refused(tmp_path):
    p = tmp_path / "evil.pt"
    torch.save({"format": "pointsam-checkpoint", "model": _Evil()}, p)
    with pytest.raises(CheckpointError, match="pickled code"):
        load_checkpoint(p)
    assert not (tmp_path / "pwned").exists() and not os.path.exists("pwned")


def test_not_a_checkpoint(tmp_path):
    torch.save({"w": torch.ones(1)}, tmp_path / "a.pt")
    with pytest.raises(CheckpointError, match="not a pointsam checkpoint"):
        load_checkpoint(tmp_path / "a.pt")
    (tmp_path / "b.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "b.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_sigkill_while_saving_keeps_previous(tmp_path):
    """Kill the writer after the new data hit the temp file but before the rename."""
    target = tmp_path / "last.pt"
    save_checkpoint(_state(1.0), target)
    script = textwrap.dedent(f"""
        import os, sys, time, torch
        from pointsam.engine import checkpoint as ck
        real_fsync = os.fsync
        def slow_fsync(fd):
            real_fsync(fd)
            print("IN_SAVE", flush=True)
            time.sleep(60)
        os.fsync = slow_fsync
        ck.save_checkpoint({{"format": "pointsam-checkpoint", "version": 1,
                            "model": {{"w": torch.full((1_000_000,), 2.0)}}}},
                           {str(target)!r})
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "IN_SAVE"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    leftovers = [p for p in os.listdir(tmp_path) if p != "last.pt"]
    assert leftovers and all(p.endswith(".tmp") for p in leftovers)  # killed mid-save
    s = load_checkpoint(target)  # the previous checkpoint, intact
    assert torch.equal(s["model"]["w"], torch.ones(4))
    save_checkpoint(_state(3.0), target)  # and the next save still works
    assert load_checkpoint(target)["epoch"] == 3


def test_rng_state_roundtrip():
    s = get_rng_state()
    assert all(isinstance(v, torch.Tensor) for v in s.values())
    a = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    set_rng_state(s)
    b = (torch.rand(3), np.random.rand(3), random.random(), np.random.randn())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[2] == b[2] and a[3] == b[3]
    _ = time  # keep import for clarity of the kill test timing


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    p = save_checkpoint(_state(1.0), tmp_path / "ck.pt")
    data = p.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
