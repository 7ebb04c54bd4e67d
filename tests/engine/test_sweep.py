"""pointsam sweep: a tiny two-config x two-seed sweep, checked against its runs.

One end-to-end test runs the real sweep (child processes, --jobs 2) once and
checks everything that needs it, in order: the tables against the runs'
summary.json files, the time budget, the progress lines, the figure, then the
skip and resume behaviour. The other tests need no training.
"""

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from pointsam.cli.sweep import add_parser, cmd_sweep
from pointsam.engine.sweep import (
    SweepError,
    check_plan,
    plan_sweep,
)
from pointsam.engine.sweep_report import mean_std, paired_difference
from pointsam.viz.sweep_figure import short_names

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import one_thread  # noqa: E402,F401

TINY = """\
model: {{name: pointnet2_lite_cls, args: {args}}}
data: {{name: synthetic_shapes, num_points: 64, batch_size: 8, eval_batch_size: 24,
       args: {{num_samples: 24}}}}
optim: {{lr: 0.01}}
train: {{epochs: {epochs}, max_batches: 3, tensorboard: false,
        time_budget_s: {budget}}}
"""


def _configs(d: Path) -> list[str]:
    d.mkdir(parents=True, exist_ok=True)
    (d / "plain.yaml").write_text(TINY.format(args="{}", epochs=2, budget=0))
    # a budget so small that one epoch of three runs
    (d / "cbam.yaml").write_text(
        TINY.format(args="{attention: cbam}", epochs=3, budget=1e-6))
    return [str(d / "plain.yaml"), str(d / "cbam.yaml")]


def _args(argv):
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(["sweep", *argv])


def _sweep(argv, logs=None):
    logs = [] if logs is None else logs
    return cmd_sweep(_args(argv), log=logs.append), logs


def _summaries(out):
    return {(n, s): json.loads((out / "runs" / n / f"seed{s}" / "summary.json")
                               .read_text())
            for n in ("plain", "cbam") for s in (0, 1)}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _check_tables(out, summ):
    rows = {r["config"]: r for r in _rows(out / "results.csv")}
    md = (out / "results.md").read_text()
    assert list(rows) == ["plain", "cbam"] and rows["plain"]["baseline"] == "True"
    for n in ("plain", "cbam"):
        r = rows[n]
        assert r["n_seeds"] == "2" and r["seeds"] == "0 1"
        for k in ("oa", "macc"):
            v = np.array([summ[n, s]["test"][k] for s in (0, 1)])
            assert float(r[f"{k}_mean"]) == pytest.approx(v.mean(), abs=1e-12)
            assert float(r[f"{k}_std"]) == pytest.approx(v.std(ddof=1), abs=1e-12)
            assert f"{100 * v.mean():.2f} ± {100 * v.std(ddof=1):.2f}" in md
        t = np.array([summ[n, s]["train_time_s"] for s in (0, 1)])
        assert float(r["train_time_s_mean"]) == pytest.approx(t.mean())
        assert int(r["params"]) == summ[n, 0]["num_parameters"] > 0
        assert r["best_epochs"] == " ".join(
            str(summ[n, s]["best"]["epoch"]) for s in (0, 1))
    # paired differences against the baseline, with the Student-t interval
    for k, label in (("oa", "OA"), ("macc", "mAcc")):
        d = np.array([summ["cbam", s]["test"][k] - summ["plain", s]["test"][k]
                      for s in (0, 1)])
        r = rows["cbam"]
        assert float(r[f"{k}_diff_mean"]) == pytest.approx(d.mean(), abs=1e-12)
        assert r[f"{k}_diff_n"] == "2" and rows["plain"][f"{k}_diff_n"] == ""
        lo, hi = stats.t.interval(0.95, 1, loc=d.mean(), scale=stats.sem(d)) \
            if d.std() > 0 else (d.mean(), d.mean())
        assert float(r[f"{k}_diff_lo"]) == pytest.approx(lo, abs=1e-9)
        assert float(r[f"{k}_diff_hi"]) == pytest.approx(hi, abs=1e-9)
        verdict = "no measurable difference" if lo <= 0 <= hi else (
            "higher than the baseline" if lo > 0 else "lower than the baseline")
        assert r[f"{k}_diff_verdict"] == verdict
        assert (f"| cbam | {label} | {100 * d[0]:+.2f}, {100 * d[1]:+.2f} | "
                f"{100 * d.mean():+.2f} | ") in md
    seeds = _rows(out / "results_seeds.csv")
    assert [(r["config"], r["seed"]) for r in seeds] == [
        ("plain", "0"), ("plain", "1"), ("cbam", "0"), ("cbam", "1")]
    for r in seeds:
        s = summ[r["config"], int(r["seed"])]
        assert float(r["oa"]) == s["test"]["oa"] and float(r["run_wall_s"]) > 0
        assert float(r["train_time_s"]) == s["train_time_s"]


def _check_budget(out, summ):
    for s in (0, 1):
        c, p = summ["cbam", s], summ["plain", s]
        assert c["epochs_run"] == 1 and c["stopped_by_time_budget"] is True
        assert c["time_budget_s"] == 1e-6 and len(c["history"]) == 1
        assert p["epochs_run"] == 2 and p["stopped_by_time_budget"] is False
    md = (out / "results.md").read_text()
    assert "| 1 of 3 |" in md and "| 2 of 2 |" in md
    by = {(r["config"], r["seed"]): r for r in _rows(out / "results_seeds.csv")}
    assert by["cbam", "0"]["stopped_by_time_budget"] == "True"
    assert by["plain", "1"]["epochs_run"] == "2"


def test_tiny_sweep_end_to_end(tmp_path):
    configs = _configs(tmp_path / "cfg")
    out = tmp_path / "sweep"
    argv = [*configs, "--seeds", "0", "1", "--jobs", "2", "--out", str(out)]
    rc, logs = _sweep(argv)
    assert rc == 0, logs
    summ = _summaries(out)
    # every run was its own `pointsam train` process with one torch thread
    for (n, s), sm in summ.items():
        assert sm["seed"] == s and sm["machine"]["torch_threads"] == 1
        assert f"train.seed={s}" in sm["machine"]["argv"]
        assert sm["config"]["train"]["out_dir"] == str(out / "runs" / n / f"seed{s}")
    _check_tables(out, summ)
    _check_budget(out, summ)
    done = [ln for ln in logs if " done: " in ln]
    assert len(done) == 4 and done[-1].startswith("[sweep] 4/4 done: ")
    assert "3 left" in done[0] and "oa=" in done[0] and "0 left" in done[-1]
    png = (out / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    # a second invocation runs nothing
    stamp = {k: (out / "runs" / k[0] / f"seed{k[1]}" / "summary.json").stat().st_mtime_ns
             for k in summ}
    rc, logs = _sweep(argv)
    assert rc == 0 and "4 already finished, 0 to run" in logs[0]
    assert not [ln for ln in logs if " done: " in ln]
    assert all((out / "runs" / k[0] / f"seed{k[1]}" / "summary.json").stat()
               .st_mtime_ns == t for k, t in stamp.items())
    # one summary lost (killed while testing): just that run, resumed from last.pt;
    # one run killed after its first epoch: resumed, it ends as if never killed
    (out / "runs" / "cbam" / "seed1" / "summary.json").unlink()
    _kill_after_one_epoch(out, configs, "plain", 0)
    rc, logs = _sweep(argv)
    assert rc == 0 and "2 already finished, 2 to run" in logs[0]
    assert sorted(ln.split(": ")[1] for ln in logs if " done: " in ln) == [
        "cbam seed 1", "plain seed 0"]
    assert sum("resuming" in ln for ln in logs) == 2
    again = _summaries(out)
    assert again["cbam", 1]["test"] == summ["cbam", 1]["test"]
    assert again["cbam", 1]["epochs_run"] == 1
    assert again["plain", 1] == summ["plain", 1]  # untouched
    a, b = summ["plain", 0], again["plain", 0]
    assert b["epochs_run"] == 2 and b["test"] == a["test"] and b["best"] == a["best"]
    assert [r["train_loss"] for r in b["history"]] == [
        r["train_loss"] for r in a["history"]]
    rec = json.loads((out / "runs" / "cbam" / "seed1" / "sweep_run.json").read_text())
    assert [a["resumed"] for a in rec["attempts"]] == [False, True]
    assert rec["wall_s"] == pytest.approx(sum(a["wall_s"] for a in rec["attempts"]))
    # --report-only re-aggregates from DIR/sweep.json without the config list
    (out / "results.md").unlink()
    rc, _ = _sweep(["--report-only", "--out", str(out)])
    assert rc == 0 and (out / "results.md").is_file()
    _check_tables(out, again)
    # with configs named, the report's command is the one that makes what it shows
    rc, _ = _sweep([configs[1], "--seeds", "0", "1", "--report-only", "--out", str(out)])
    cmd = next(ln for ln in (out / "results.md").read_text().splitlines()
               if ln.startswith("Command:"))
    assert rc == 0 and "cbam.yaml" in cmd and "plain.yaml" not in cmd


def _kill_after_one_epoch(out, configs, name, seed):
    """Replace a run by one that stopped after its first epoch (no summary)."""
    from pointsam.engine.trainer import Trainer

    run = next(r for r in plan_sweep(configs, [0, 1], out) if
               (r.name, r.seed) == (name, seed))
    shutil.rmtree(run.out_dir)
    Trainer(run.load()).fit(stop_after=1)
    assert (run.out_dir / "last.pt").is_file() and not run.summary_path.exists()


# ------------------------------------------------------------ no training needed
def test_bad_configs_are_all_reported_before_any_run(tmp_path):
    good = _configs(tmp_path / "cfg")[0]
    typo = tmp_path / "cfg" / "typo.yaml"
    typo.write_text("train: {epohcs: 2}\n")
    bogus = tmp_path / "cfg" / "bogus.yaml"
    bogus.write_text("model: {name: pointnet2_lite_cls, args: {bogus: 1}}\n"
                     "data: {name: synthetic_shapes, args: {num_samples: 8}}\n")
    out = tmp_path / "sweep"
    with pytest.raises(SweepError) as e:
        _sweep([good, str(typo), str(bogus), str(tmp_path / "missing.yaml"),
                "--seeds", "0", "--out", str(out)])
    msg = str(e.value)
    assert msg.startswith("3 problem(s); nothing was run")
    assert "unknown key 'train.epohcs'" in msg and "bogus" in msg
    assert "config file not found" in msg and "plain.yaml" not in msg
    assert not out.exists()


def test_bad_override_names_every_config(tmp_path):
    configs = _configs(tmp_path / "cfg")
    with pytest.raises(SweepError, match=r"(?s)2 problem.*plain.yaml.*"
                       r"optim.scheduler.*cbam.yaml.*valid values"):
        _sweep([*configs, "--set", "optim.scheduler=warm", "--out",
                str(tmp_path / "s")])


def test_plan_rejects_bad_seeds_and_name_clashes(tmp_path):
    with pytest.raises(SweepError, match="distinct and >= 0"):
        plan_sweep(["a.yaml"], [0, 0], tmp_path)
    with pytest.raises(SweepError, match="two configs are named 'a'"):
        plan_sweep(["x/a.yaml", "y/a.yaml"], [0], tmp_path)
    with pytest.raises(SweepError, match="no config given"):
        _sweep(["--out", str(tmp_path)])
    with pytest.raises(SweepError, match="sweep sets train.seed itself"):
        plan_sweep(["a.yaml"], [0], tmp_path, ["train.seed=4"])
    runs = plan_sweep(["x/a.yaml"], [3], tmp_path, ["train.epochs=1"])
    assert runs[0].out_dir == tmp_path.resolve() / "runs" / "a" / "seed3"
    cmd = runs[0].command(resume=True)
    assert cmd[1:4] == ["-m", "pointsam", "train"] and cmd[-1] == "--resume"
    assert "train.seed=3" in cmd and "train.num_threads=1" in cmd
    assert cmd.index("train.epochs=1") < cmd.index("train.seed=3")
    assert runs[0].command()[-1] == "--overwrite"  # the sweep owns its run folders


def test_a_failing_run_is_reported_and_the_others_go_on(tmp_path, monkeypatch):
    from pointsam.engine import sweep

    runs = plan_sweep(["a.yaml", "b.yaml"], [0], tmp_path)
    code = {"a": "import sys; print('boom: bad data'); sys.exit(3)",
            "b": "import json, pathlib; pathlib.Path('summary.json').write_text("
                 "json.dumps({'task': 'cls', 'test': {'oa': 0.5}, 'config': {}}))"}
    monkeypatch.setattr(sweep.SweepRun, "command", lambda self, resume=False: [
        sys.executable, "-c", f"import os; os.chdir({str(self.out_dir)!r}); "
        + code[self.name]])
    logs = []
    out = sweep.run_sweep(runs, jobs=2, log=logs.append)
    assert [o.status for o in out] == ["failed", "done"]
    assert out[0].returncode == 3 and out[1].summary["test"]["oa"] == 0.5
    fail = next(ln for ln in logs if "FAILED" in ln)
    assert "FAILED a seed 0 (exit 3)" in fail and "boom: bad data" in fail
    rec = json.loads((runs[0].out_dir / "sweep_run.json").read_text())
    assert rec["attempts"][0]["returncode"] == 3
    again = sweep.run_sweep(runs, jobs=2, log=logs.append)  # retried, b skipped
    assert [o.status for o in again] == ["failed", "skipped"]
    assert not (runs[0].out_dir / "sweep.pid").exists()


def test_a_run_another_process_is_training_is_not_started_twice(tmp_path):
    from pointsam.engine import sweep

    run = plan_sweep(["a.yaml"], [0], tmp_path)[0]
    run.out_dir.mkdir(parents=True)
    # a live process whose command line looks like a pointsam train run
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                          "pointsam", "train"])
    try:
        (run.out_dir / "sweep.pid").write_text(f"{p.pid}\n")
        for _ in range(100):  # until the child has exec'd its command line
            if sweep._live_pid(run) == p.pid:
                break
            time.sleep(0.05)
        logs = []
        assert [o.status for o in sweep.run_sweep([run], 1, log=logs.append)] == [
            "busy"]
        assert f"being trained by process {p.pid}" in logs[0]
    finally:
        p.kill()
        p.wait()
    assert sweep._live_pid(run) is None  # a dead pid no longer blocks the run


def _hold_lock(folder):
    """A live process holding ``folder``'s run lock, as a ``pointsam train`` does."""
    p = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; "
         "from pointsam.engine.rundir import acquire_lock; "
         "lock = acquire_lock(sys.argv[1]); print('held', flush=True); time.sleep(60)",
         str(folder)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_run_taken_by_another_sweep_after_planning_is_left_to_it(tmp_path, monkeypatch):
    # two sweeps on one --out: the other took run a (its lock) and finished run b
    # (its summary) after this one listed them as to do; neither is started again
    from pointsam.engine import rundir, sweep

    runs = plan_sweep(["a.yaml", "b.yaml", "c.yaml"], [0], tmp_path)
    for r in runs:
        r.out_dir.mkdir(parents=True)
    write = ("import json, sys; open(sys.argv[1], 'w').write("
             "json.dumps({'task': 'cls', 'test': {'oa': 0.5}, 'config': {}}))")
    monkeypatch.setattr(sweep.SweepRun, "command", lambda self, resume=False: [
        sys.executable, "-c", write, str(self.summary_path)])
    held = []

    def log(line):
        logs.append(line)
        if line.startswith("[sweep] 3 runs:"):  # planned; now the other sweep acts
            held.append(_hold_lock(runs[0].out_dir))
            runs[1].summary_path.write_text(json.dumps(
                {"task": "cls", "test": {"oa": 0.25}, "config": {}}))

    logs = []
    try:
        assert rundir.lock_holder(runs[0].out_dir) is None
        out = sweep.run_sweep(runs, jobs=1, log=log)
        assert [o.status for o in out] == ["busy", "skipped", "done"]
        assert out[0].holder == str(held[0].pid)
        assert rundir.lock_holder(runs[0].out_dir) == str(held[0].pid)
    finally:
        for p in held:
            p.kill()
            p.wait()
    assert out[1].summary["test"]["oa"] == 0.25  # the other sweep's result, kept
    assert not (runs[0].out_dir / "sweep.log").exists()  # never launched there
    assert not (runs[0].out_dir / "sweep.pid").exists()
    assert f"a seed 0 was started by process {held[0].pid} meanwhile" in "\n".join(logs)
    assert "b seed 0 was finished by another process meanwhile" in "\n".join(logs)
    assert rundir.lock_holder(runs[0].out_dir) is None  # released with its holder
    # and a sweep started while the other holds the lock sees it from the start
    p = _hold_lock(runs[0].out_dir)
    try:
        (runs[0].out_dir / "summary.json").unlink(missing_ok=True)
        again = sweep.run_sweep(runs[:1], jobs=1, log=logs.append)
        assert [o.status for o in again] == ["busy"]
        assert f"a seed 0 is being trained by process {p.pid}" in "\n".join(logs)
    finally:
        p.kill()
        p.wait()


def test_configs_of_different_tasks_are_refused(tmp_path):
    cls = _configs(tmp_path / "cfg")[0]
    parts = tmp_path / "cfg" / "parts.yaml"
    parts.write_text("model: {name: pointnet2_lite_partseg}\n"
                     "data: {name: synthetic_parts, args: {num_samples: 8}}\n")
    with pytest.raises(SweepError, match="do not share one task.*plain: cls.*"
                       "parts: partseg"):
        check_plan(plan_sweep([cls, str(parts)], [0], tmp_path))


def test_a_folder_of_another_config_is_refused(tmp_path):
    cfg = _configs(tmp_path / "cfg")[0]
    run = plan_sweep([cfg], [0], tmp_path / "s")[0]
    run.out_dir.mkdir(parents=True)
    summary = {"task": "cls", "test": {"oa": 0.5}, "config": {
        "optim": {"lr": 0.5}, "train": {"out_dir": "elsewhere"}}}
    (run.out_dir / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(SweepError, match=r"holds a run of another config.*"
                       r"optim.lr: 0.5 there, 0.01 now"):
        check_plan([run])


def test_dry_run_lists_commands_and_runs_nothing(tmp_path):
    configs = _configs(tmp_path / "cfg")
    out = tmp_path / "s"
    rc, logs = _sweep([*configs, "--seeds", "0", "1", "--dry-run", "--out", str(out)])
    assert rc == 0 and len(logs) == 4 and all(ln.startswith("[new] ") for ln in logs)
    assert not out.exists()


def test_paired_difference_matches_scipy():
    base = {0: 0.90, 1: 0.91, 2: 0.93, 3: 0.5}
    other = {0: 0.92, 1: 0.925, 2: 0.95}  # seed 3 unpaired: left out
    d = paired_difference(base, other)
    diffs = np.array([0.02, 0.015, 0.02])
    lo, hi = stats.t.interval(0.95, 2, loc=diffs.mean(), scale=stats.sem(diffs))
    assert d["seeds"] == [0, 1, 2] and d["n"] == 3
    assert d["mean"] == pytest.approx(diffs.mean())
    assert (d["lo"], d["hi"]) == (pytest.approx(lo), pytest.approx(hi))
    assert lo > 0 and d["verdict"] == "higher than the baseline"
    worse = paired_difference(other, base)
    assert worse["verdict"] == "lower than the baseline"
    noisy = paired_difference({0: 0.9, 1: 0.9}, {0: 0.95, 1: 0.86})
    assert noisy["lo"] < 0 < noisy["hi"]
    assert noisy["verdict"] == "no measurable difference"
    one = paired_difference({0: 0.9}, {0: 0.95})
    assert math.isnan(one["lo"]) and one["verdict"] == "one paired seed: no interval"


def test_mean_std_and_short_names():
    assert mean_std([0.5]) == (0.5, pytest.approx(float("nan"), nan_ok=True))
    m, s = mean_std([0.1, 0.2, 0.6])
    assert m == pytest.approx(0.3) and s == pytest.approx(np.std([0.1, 0.2, 0.6],
                                                                 ddof=1))
    assert short_names(["a_b", "a_b_cbam"]) == ["b", "cbam"]
    assert short_names(["solo_name"]) == ["solo_name"]


def test_a_sweep_extended_by_a_later_invocation_reports_every_config(tmp_path,
                                                                     monkeypatch):
    """A second `pointsam sweep` into the same DIR (another config, one more
    seed) extends DIR/sweep.json: its report, and a later --report-only, show
    every config and seed of DIR, with the command that makes them all."""
    from pointsam.engine import sweep

    def fake(self, resume=False):  # a finished run in a blink: its summary
        s = {"task": "cls", "test": {"oa": 0.5 + self.seed / 10, "macc": 0.4},
             "config": {}, "num_parameters": 7, "train_time_s": 1.0}
        return [sys.executable, "-c", "import json, pathlib; pathlib.Path("
                f"{str(self.out_dir / 'summary.json')!r}).write_text({json.dumps(s)!r})"]

    monkeypatch.setattr(sweep.SweepRun, "command", fake)
    plain, cbam = _configs(tmp_path / "cfg")
    out = tmp_path / "sweep"
    assert _sweep([plain, "--seeds", "0", "--out", str(out)])[0] == 0
    assert _sweep([cbam, "--seeds", "0", "1", "--out", str(out)])[0] == 0
    meta = json.loads((out / "sweep.json").read_text())
    assert [c["name"] for c in meta["configs"]] == ["plain", "cbam"]
    assert meta["seeds"] == [0, 1]
    # the first invocation's baseline (its first config) stays the sweep's: the
    # second invocation named no --baseline
    assert meta["baseline"] == "plain" and "--baseline" not in meta["command"]
    for argv in ([], ["--report-only"]):
        if argv:
            (out / "results.md").unlink()
            assert _sweep([*argv, "--out", str(out)])[0] == 0
        md = (out / "results.md").read_text()
        cmd = next(ln for ln in md.splitlines() if ln.startswith("Command:"))
        assert "plain.yaml" in cmd and "cbam.yaml" in cmd and "--seeds 0 1" in cmd
        assert "Runs: 3 finished of 4" in md  # plain seed 1 was never asked for
        assert "Baseline: `plain`" in md
        with open(out / "results_seeds.csv", newline="") as f:
            got = {(r["config"], r["seed"]) for r in csv.DictReader(f)}
        assert got == {("plain", "0"), ("cbam", "0"), ("cbam", "1")}
