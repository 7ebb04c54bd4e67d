"""`pointsam sweep` through the command line: help and one-line errors."""

import subprocess
import sys
from pathlib import Path

from pointsam.cli import main


def test_sweep_help_lists_the_options():
    out = subprocess.run([sys.executable, "-m", "pointsam", "sweep", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for opt in ("--seeds", "--set", "--jobs", "--baseline", "--out", "--report-only"):
        assert opt in out.stdout


def test_a_bad_config_is_an_error_before_any_run(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {epohcs: 2}\n")
    out = tmp_path / "sweep"
    rc = main(["sweep", str(bad), str(tmp_path / "none.yaml"), "--seeds", "0", "1",
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("pointsam: error: 2 problem(s); nothing was run")
    assert "unknown key 'train.epohcs'" in err and "none.yaml" in err
    assert not Path(out).exists()


def test_report_only_without_runs_is_an_error(tmp_path, capsys):
    cfg = tmp_path / "a.yaml"
    cfg.write_text("train: {epochs: 1}\n")
    rc = main(["sweep", str(cfg), "--report-only", "--out", str(tmp_path / "s")])
    assert rc == 2 and "no finished run under" in capsys.readouterr().err
