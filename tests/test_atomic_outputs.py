"""No output is ever half-written (issue 27, section 2): every file pointsam
writes goes through :mod:`pointsam._atomic`; a full disk keeps the previous file,
leaves no partial one and reads as one ``pointsam: error:`` line.

The helper's own tests fake the failure (``os.fsync`` raising ``ENOSPC``); the
end-to-end ones write into a real, tiny, full tmpfs (skipped where mounting is
not permitted).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pointsam._atomic import (
    OutOfSpaceError,
    atomic_path,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    is_out_of_space,
)
from pointsam.cli import main

REPO = Path(__file__).resolve().parents[1]
MODEL = "pointnet2_lite_cbam_modelnet10"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _fsync_full(monkeypatch, code=errno.ENOSPC):
    def full(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", full)


# ------------------------------------------------------------------ the helper
def test_full_disk_keeps_the_previous_file_and_no_partial_one(tmp_path, monkeypatch):
    p = tmp_path / "pred.ply"
    p.write_bytes(b"good")
    _fsync_full(monkeypatch)
    with pytest.raises(OutOfSpaceError) as e:
        atomic_write_bytes(p, b"new but never complete")
    assert str(e.value) == (f"no space left on device while writing {p} "
                            "(the previous pred.ply is kept)")
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC
    assert e.value.filename == str(p) and e.value.kept
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert p.read_bytes() == b"good" and _leftovers(tmp_path) == []


def test_full_disk_without_a_previous_file_leaves_nothing(tmp_path, monkeypatch):
    p = tmp_path / "summary.json"
    _fsync_full(monkeypatch, errno.EDQUOT)
    with pytest.raises(OutOfSpaceError, match=r"^disk quota exceeded while writing "
                       r".*summary.json \(no previous summary.json existed\)$"):
        atomic_write_text(p, "{}\n")
    assert list(tmp_path.iterdir()) == []


def test_any_other_error_is_raised_as_it_is_and_keeps_the_file(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("old\n")
    with pytest.raises(KeyError, match="boom"), atomic_write(p, "w") as f:
        f.write("half")
        raise KeyError("boom")
    assert p.read_text() == "old\n" and _leftovers(tmp_path) == []


def test_success_replaces_the_file_with_the_umask_mode(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("old")
    os.chmod(p, 0o600)
    with atomic_write(p, "w", newline="") as f:
        f.write("a\r\nb")
    mask = os.umask(0)
    os.umask(mask)
    assert p.read_bytes() == b"a\r\nb" and _leftovers(tmp_path) == []
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_symlink_keeps_pointing_at_the_new_content(tmp_path):
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text("old")
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="the folder .*nope does not exist"):
        atomic_write_bytes(tmp_path / "nope" / "x.png", b"")


def test_atomic_path_keeps_the_suffix_and_cleans_up(tmp_path):
    p = tmp_path / "m.onnx"
    p.write_bytes(b"old")
    with atomic_path(p) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".onnx" and tmp != p
        tmp.write_bytes(b"new")
    assert p.read_bytes() == b"new" and _leftovers(tmp_path) == []

    def writer(path):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OutOfSpaceError, match=r"\(the previous m.onnx is kept\)"), \
            atomic_path(p) as tmp:
        writer(tmp)
    assert p.read_bytes() == b"new" and _leftovers(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="nothing was written to"), \
            atomic_path(tmp_path / "e.ply") as tmp:
        tmp.unlink()  # a writer that failed silently
    assert not (tmp_path / "e.ply").exists() and _leftovers(tmp_path) == []


def test_torch_write_errors_read_as_out_of_space():
    # torch.save to a file object: "unexpected pos" raised while handling ENOSPC
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError(  # noqa: B904
                "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    except RuntimeError as e:
        assert is_out_of_space(e) == errno.ENOSPC
    assert is_out_of_space(RuntimeError("PytorchStreamWriter failed writing file "
                                        "data/0: file write failed")) == errno.ENOSPC
    assert is_out_of_space(RuntimeError("unexpected pos 1 vs 2")) is None
    assert is_out_of_space(OSError(errno.EACCES, "Permission denied")) is None


# --------------------------------------------------------- a real, full disk
@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB tmpfs and a function that fills it to the last byte."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.strip()}")

    def fill():
        with open(mnt / ".filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as e:
                assert e.errno == errno.ENOSPC
        with pytest.raises(OSError):  # not one more byte
            with open(mnt / ".probe", "wb", buffering=0) as f:
                f.write(b"\0" * 4096)
        (mnt / ".probe").unlink()

    yield mnt, fill
    subprocess.run(["umount", str(mnt)], check=False)


def _only_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("pointsam: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_save_checkpoint_on_a_full_disk_is_one_checkpoint_error(full_disk):
    from pointsam.engine.checkpoint import CheckpointError, save_checkpoint

    disk, fill = full_disk
    fill()
    with pytest.raises(CheckpointError) as e:  # torch's own chained error, for real
        save_checkpoint({"w": torch.randn(64, 256)}, disk / "last.pt")
    assert str(e.value) == (f"no space left on device while writing {disk / 'last.pt'}"
                            " (no previous last.pt existed); free some space and "
                            "resume with --resume")
    assert e.value.__suppress_context__
    assert [p.name for p in disk.iterdir()] == [".filler"]


def test_library_writers_on_a_full_disk_keep_the_previous_files(full_disk):
    from pointsam.data._common import save_npy_atomic
    from pointsam.data.io.ply import write_ply_vertices
    from pointsam.engine.logger import RunLogger
    from pointsam.nn import PointGate
    from pointsam.viz import capture, capture_inputs
    from pointsam.viz.figure import new_figure, save_figure
    from pointsam.viz.html import to_html
    from pointsam.viz.image import write_png

    disk, fill = full_disk
    img = np.zeros((8, 8, 3), np.uint8)
    gate, pos = PointGate(4, k=4), torch.randn(30, 3)
    with capture(gate) as rec, capture_inputs(gate) as inputs:
        gate(torch.randn(30, 4), pos)
    writers = {
        "a.png": lambda p: write_png(p, img),
        "b.svg": lambda p: save_figure(new_figure(40, 30), p),
        "c.ply": lambda p: write_ply_vertices(p, {"x": np.zeros(5000, "f4")}),
        "d.npy": lambda p: save_npy_atomic(p, np.zeros(5000)),
        "summary.json": lambda p: RunLogger(disk, tensorboard=False).write_summary(
            {"a": list(range(20000))}),
        "e.html": lambda p: to_html(rec, pos, p, inputs=inputs),
    }
    for name in writers:
        (disk / name).write_bytes(b"previous " + name.encode())
    fill()
    for name, write in writers.items():
        with pytest.raises(OutOfSpaceError, match=f"the previous {name} is kept"):
            write(disk / name)
        assert (disk / name).read_bytes() == b"previous " + name.encode()
    assert _leftovers(disk) == [".filler"]


def test_predict_onto_a_full_disk_keeps_the_earlier_prediction(full_disk, tmp_path,
                                                                capsys):
    disk, fill = full_disk
    cloud = tmp_path / "cloud.npy"
    x = np.random.default_rng(0).normal(size=(1024, 3)).astype(np.float32)
    np.save(cloud, x / np.linalg.norm(x, axis=1, keepdims=True))
    out = disk / "pred.ply"
    assert main(["predict", "--model", MODEL, str(cloud), "--out", str(out)]) == 0
    good = out.read_bytes(), out.with_suffix(".json").read_bytes()
    capsys.readouterr()
    fill()
    assert main(["predict", "--model", MODEL, str(cloud), "--out", str(out)]) == 2
    line = _only_error_line(capsys.readouterr().err)
    # a classification writes its .json first (an existing .ply means done)
    js = out.with_suffix(".json")
    assert line == (f"pointsam: error: no space left on device while writing {js} "
                    "(the previous pred.json is kept)")
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == good
    assert _leftovers(disk) == [".filler"]


def test_predict_with_a_failing_fsync_keeps_the_earlier_prediction(
        tmp_path, monkeypatch, capsys):
    # the same without a tmpfs (runs where mounting is not permitted)
    cloud = tmp_path / "cloud.npy"
    np.save(cloud, np.random.default_rng(1).normal(size=(256, 3)).astype(np.float32))
    out = tmp_path / "pred.ply"
    assert main(["predict", "--model", MODEL, str(cloud), "--out", str(out)]) == 0
    good = out.read_bytes(), out.with_suffix(".json").read_bytes()
    capsys.readouterr()
    _fsync_full(monkeypatch)
    assert main(["predict", "--model", MODEL, str(cloud), "--out", str(out)]) == 2
    assert _only_error_line(capsys.readouterr().err).endswith(
        f"while writing {out.with_suffix('.json')} (the previous pred.json is kept)")
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == good
    assert _leftovers(tmp_path) == []


def test_export_pt2_onto_a_full_disk_exits_2_not_abort(full_disk, capsys):
    # torch.export.save into a full file system throws c10::Error from C++ and
    # aborts (rc 134); the archive is now built in memory, then written atomically
    disk, fill = full_disk
    (disk / "kept.pt2").write_bytes(b"previous export")
    fill()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("POINTSAM_DEBUG", None)
    r = subprocess.run(  # its own process: an abort would take pytest down
        [sys.executable, "-m", "pointsam", "export", "--model", MODEL, "--format",
         "pt2", "--out", str(disk / "new.pt2")],
        capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 2, r.stderr[-2000:]
    assert _only_error_line(r.stderr) == (
        f"pointsam: error: no space left on device while writing {disk / 'new.pt2'}"
        " (no previous new.pt2 existed)")
    assert main(["export", "--model", MODEL, "--format", "pt2", "--out",
                 str(disk / "kept.pt2")]) == 2
    assert _only_error_line(capsys.readouterr().err).endswith(
        "(the previous kept.pt2 is kept)")
    assert sorted(p.name for p in disk.iterdir()) == [".filler", "kept.pt2"]
    assert (disk / "kept.pt2").read_bytes() == b"previous export"


def test_export_onnx_onto_a_full_disk_is_one_line(full_disk, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    disk, fill = full_disk
    fill()
    out = disk / "m.onnx"
    assert main(["export", "--model", MODEL, "--format", "onnx", "--out",
                 str(out)]) == 2
    assert _only_error_line(capsys.readouterr().err) == (
        f"pointsam: error: no space left on device while writing {out} "
        "(no previous m.onnx existed)")
    assert [p.name for p in disk.iterdir()] == [".filler"]
