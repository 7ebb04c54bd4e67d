"""pointsam sweep over the LiDAR recipe configs (train/lidar/*.yaml), and the
recipe as a `pointsam train` run.

The runs use the real configs with tiny overrides (3 steps of two 512-point
crops, one synthetic scene, a coarse 0.3 m voxel at evaluation): a run takes
about 5 s, most of it the child's imports and the whole-frame evaluations.
"""

import argparse
import csv
import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pointsam.cli import main
from pointsam.cli.sweep import add_parser
from pointsam.engine.config import ConfigError
from pointsam.engine.lidar import is_lidar_recipe, load_lidar_config
from pointsam.engine.sweep import SweepError, check_plan, cmd_sweep, plan_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import one_thread  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[2]
LIDAR = ROOT / "train" / "lidar"
FRAMES = "open3d_ml_demo_data/examples/demo_data"


def _tiny(shared_data):
    """Overrides that make a recipe run take seconds (and learn a little)."""
    return [f"data.frames={shared_data / FRAMES}", "train.steps=3",
            "train.eval_every=1", "train.warmup=0", "train.lr=0.01",
            "data.synthetic_scenes=1", "data.max_points=512", "data.radius=5.0",
            "data.voxel_size=0.3", "train.chunk_points=30000"]


def _sweep(argv):
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    logs = []
    return cmd_sweep(p.parse_args(["sweep", *argv]), log=logs.append), logs


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _read(out, n, s):
    d = out / "runs" / n / f"seed{s}"
    return (json.loads((d / "summary.json").read_text()),
            json.loads((d / "metrics.json").read_text()))


# ------------------------------------------------------------- the sweep itself
def _argv(shared_data, out, *extra):
    sets = [a for o in _tiny(shared_data) for a in ("--set", o)]
    return [str(LIDAR / "plain.yaml"), str(LIDAR / "axial.yaml"), "--seeds", "0",
            "1", *sets, "--jobs", "2", "--out", str(out), *extra]


def _check_runs_and_tables(out):
    """Each run's summary against its metrics.json; the tables against both."""
    runs = {(n, s): _read(out, n, s) for n in ("plain", "axial") for s in (0, 1)}
    for (n, s), (summ, met) in runs.items():
        cfg = summ["config"]  # the recipe's own keys, set by the sweep
        assert summ["task"] == "semseg" and summ["unit"] == "step"
        assert cfg["train"]["seed"] == summ["seed"] == s
        assert cfg["train"]["num_threads"] == 1
        assert cfg["train"]["out_dir"] == str(out / "runs" / n / f"seed{s}")
        assert cfg["model"]["args"]["attention"] == (None if n == "plain" else "axial")
        assert summ["test"]["miou"] == met["test"]["miou"]
        assert summ["test"]["oa"] == met["test"]["oa"]
        assert summ["test"]["points"] == 86139  # every point of frame 000750
        assert summ["best"]["step"] == met["best_step"] in (1, 2, 3)
        assert summ["num_parameters"] == met["params"] > 0
        assert summ["train_time_s"] == met["train_seconds"]
        assert summ["steps_run"] == summ["steps_planned"] == 3
    # a learnt model is not constant: the tables below compare real numbers
    assert len({round(m["test"]["oa"], 6) for _, m in runs.values()}) > 1

    rows = {r["config"]: r for r in _rows(out / "results.csv")}
    md = (out / "results.md").read_text()
    assert list(rows) == ["plain", "axial"] and rows["plain"]["baseline"] == "True"
    for n in ("plain", "axial"):
        r = rows[n]
        assert r["n_seeds"] == "2" and r["task"] == "semseg"
        for k in ("miou", "oa"):
            v = np.array([runs[n, s][1]["test"][k] for s in (0, 1)])
            assert float(r[f"{k}_mean"]) == pytest.approx(v.mean(), abs=1e-12)
            assert float(r[f"{k}_std"]) == pytest.approx(v.std(ddof=1), abs=1e-12)
            assert f"{100 * v.mean():.2f} ± {100 * v.std(ddof=1):.2f}" in md
        assert int(r["params"]) == runs[n, 0][1]["params"]
        assert r["best_steps"] == " ".join(str(runs[n, s][1]["best_step"])
                                           for s in (0, 1))
        assert r["steps_run"] == "3 3" and r["steps_planned"] == "3"
        assert "epochs_run" not in r
    for k, label in (("miou", "mIoU"), ("oa", "OA")):
        d = np.array([runs["axial", s][1]["test"][k] - runs["plain", s][1]["test"][k]
                      for s in (0, 1)])
        assert float(rows["axial"][f"{k}_diff_mean"]) == pytest.approx(d.mean(),
                                                                       abs=1e-12)
        assert (f"| axial | {label} | {100 * d[0]:+.2f}, {100 * d[1]:+.2f} | "
                f"{100 * d.mean():+.2f} | ") in md
    assert "| step chosen | steps run |" in md and "| 3 of 3 |" in md
    assert "every point of the real test frame" in md
    for r in _rows(out / "results_seeds.csv"):
        summ, met = runs[r["config"], int(r["seed"])]
        assert float(r["miou"]) == met["test"]["miou"]
        assert float(r["oa"]) == met["test"]["oa"]
        assert int(r["best_step"]) == met["best_step"] and r["steps_run"] == "3"
    return runs


@pytest.mark.dataset
def test_tiny_lidar_sweep_tables_match_its_runs(tmp_path, shared_data):
    """The sweep's runs made in this process (as its children would make
    them, from the configs it plans), then its report: seconds, not minutes."""
    from pointsam.engine.lidar import run_lidar

    out = tmp_path / "sweep"
    argv = _argv(shared_data, out)
    runs = plan_sweep([argv[0], argv[1]], [0, 1], out, _tiny(shared_data))
    assert check_plan(runs) == "semseg"
    for r in runs:
        run_lidar(r.load(), overwrite=True, log=lambda m: None)
    rc, logs = _sweep([*argv, "--report-only"])
    assert rc == 0, logs
    _check_runs_and_tables(out)


@pytest.mark.slow
@pytest.mark.dataset
def test_tiny_lidar_sweep_end_to_end(tmp_path, shared_data):
    """The real thing: `pointsam train` children, two at once (about 25 s on two
    loaded cores)."""
    out = tmp_path / "sweep"
    argv = _argv(shared_data, out)
    rc, logs = _sweep(argv)
    assert rc == 0, logs
    runs = _check_runs_and_tables(out)
    for summ, _ in runs.values():  # one `pointsam train` process, one thread each
        assert summ["machine"]["torch_threads"] == 1
        assert summ["machine"]["argv"][-1] == "--overwrite"
    assert json.loads((out / "sweep.json").read_text())["lidar_recipe"] is True
    done = [ln for ln in logs if " done: " in ln]
    assert len(done) == 4 and "miou=" in done[0] and "oa=" in done[0]
    # a finished sweep runs nothing again; an unfinished run (no summary:
    # killed) is planned from step 0 with --overwrite (no last.pt to resume;
    # the restart itself: test_pointsam_train_runs_a_recipe_config)
    rc, logs = _sweep(argv)
    assert rc == 0 and "4 already finished, 0 to run" in logs[0]
    (out / "runs" / "axial" / "seed1" / "summary.json").unlink()
    rc, logs = _sweep([*argv, "--dry-run"])
    assert rc == 0 and [ln.split("]")[0] for ln in logs] == [
        "[finished", "[finished", "[finished", "[new"]
    assert logs[-1].endswith("--overwrite") and "seed1" in logs[-1]


# ------------------------------------------------- pointsam train on a recipe
@pytest.mark.dataset
def test_pointsam_train_runs_a_recipe_config(tmp_path, shared_data, capsys):
    run = tmp_path / "run"
    argv = ["train", str(LIDAR / "plain.yaml"),
            *[a for o in _tiny(shared_data) for a in ("--set", o)],
            "--set", f"train.out_dir={run}", "--set", "data.holdout.below=-100"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    summ = json.loads((run / "summary.json").read_text())
    met = json.loads((run / "metrics.json").read_text())
    assert summ["config"]["data"]["holdout"] == {"axis": 1, "below": -100}
    assert summ["config"] == met["config"] and summ["test"]["oa"] == met["test"]["oa"]
    assert f"miou={met['test']['miou']:.4f} oa={met['test']['oa']:.4f}" in text
    assert "| road | 10191 |" in text  # the per-class table of the test frame
    assert not (run / ".lock").read_text().strip()  # released

    # a new run into a folder holding one is refused; --resume of a finished
    # run of the same config returns it without training
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    stamp = (run / "best.pt").stat().st_mtime_ns
    assert main([*argv, "--resume"]) == 0
    assert (run / "best.pt").stat().st_mtime_ns == stamp
    assert "nothing to resume" in capsys.readouterr().err
    assert main([*argv, "--set", "train.steps=4", "--resume"]) == 2
    assert "finished run of another config (train.steps: 3 there, 4 now)" in \
        capsys.readouterr().err
    # a finished run keeps no last.pt; unfinished without one (no summary):
    # --resume restarts it cleanly from step 0
    assert not (run / "last.pt").exists()
    (run / "summary.json").unlink()
    assert main([*argv, "--resume"]) == 0
    assert "no last.pt to continue: restarting from step 0" in capsys.readouterr().err
    again = json.loads((run / "summary.json").read_text())
    same = {k: v for k, v in summ["test"].items() if k != "seconds"}
    assert {k: again["test"][k] for k in same} == same and again["steps_run"] == 3


class _Killed(Exception):
    pass


@pytest.mark.dataset
def test_a_killed_recipe_run_resumes_to_the_uninterrupted_result(tmp_path, shared_data):
    """Killed after step 3's training (last.pt holds step 2), then --resume: the
    same log rows, best step, best weights and test scores as one whole run."""
    from pointsam.engine.checkpoint import load_checkpoint
    from pointsam.engine.lidar import run_lidar
    from pointsam.engine.rundir import RunDirError

    def cfg(out, **train):
        c = load_lidar_config(LIDAR / "plain.yaml", [
            *_tiny(shared_data), "train.steps=4", f"train.out_dir={out}",
            "model.args.dropout=0.5"])  # the resumed run must restore the RNG
        c["train"].update(train)
        return c

    whole = run_lidar(cfg(tmp_path / "whole"), log=lambda m: None)
    assert not (tmp_path / "whole" / "last.pt").exists()

    def kill_at_step_3(msg):
        if msg.startswith("step 3/4"):
            raise _Killed

    # the killed run is a sweep's run: the sweep then plans it with --resume
    sets = [*_tiny(shared_data), "train.steps=4", "model.args.dropout=0.5"]
    out = tmp_path / "sweep"
    (run,) = plan_sweep([LIDAR / "plain.yaml"], [0], out, sets)
    part = run.out_dir
    with pytest.raises(_Killed):
        run_lidar(run.load(), log=kill_at_step_3)
    assert not (part / "summary.json").exists()
    ck = load_checkpoint(part / "last.pt")
    assert ck["step"] == 2 and [r["step"] for r in ck["rows"]] == [1, 2]
    rc, logs = _sweep([str(LIDAR / "plain.yaml"), "--seeds", "0", "--out", str(out),
                       *[a for o in sets for a in ("--set", o)], "--dry-run"])
    assert rc == 0 and logs[-1].startswith("[resume]")
    assert logs[-1].endswith("--resume")
    # another config may not continue it
    with pytest.raises(RunDirError, match="an unfinished run of another config "
                       r"\(train.lr: 0.01 there, 0.02 now\)"):
        run_lidar(cfg(part, lr=0.02), resume=True, log=lambda m: None)

    logs = []
    resumed = run_lidar(cfg(part, time_budget_s=999), resume=True, log=logs.append)
    assert any(m.startswith("resuming from step 2 of 4") for m in logs)
    assert not any(m.startswith(("step 1/", "step 2/")) for m in logs)
    assert not (part / "last.pt").exists()
    a, b = (json.loads((d / "metrics.json").read_text())
            for d in (tmp_path / "whole", part))
    assert a["best_step"] == b["best_step"] and a["steps_done"] == b["steps_done"] == 4
    assert a["test"]["confusion"] == b["test"]["confusion"]
    assert resumed["test"]["miou"] == whole["test"]["miou"]
    rows = [_rows(d / "log.csv") for d in (tmp_path / "whole", part)]
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in rs] for rs in rows]
    assert strip[0] == strip[1]
    wa, wb = (torch.load(d / "best.pt", weights_only=True)["state_dict"]
              for d in (tmp_path / "whole", part))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.dataset
def test_the_lidar_script_wraps_the_same_run(tmp_path, shared_data, capsys):
    script = runpy.run_path(str(ROOT / "train" / "lidar.py"), run_name="lidar_script")
    run = tmp_path / "run"
    (run).mkdir()
    (run / "metrics.json").write_text("{}")  # the script replaces an old run
    script["main"]([str(LIDAR / "plain.yaml"), "--set", *_tiny(shared_data),
                    f"train.out_dir={run}"])
    assert "| road | 10191 |" in capsys.readouterr().out
    summ = json.loads((run / "summary.json").read_text())
    assert summ["task"] == "semseg" and summ["steps_run"] == 3


# ----------------------------------------------------------- no training needed
def test_recipe_configs_are_recognised_by_schema():
    kinds = {p.stem: is_lidar_recipe(yaml.safe_load(p.read_text()))
             for p in sorted(LIDAR.glob("*.yaml"))}
    assert kinds == {"axial": True, "local_global": True, "plain": True,
                     "plain_long": True, "temporal_T2": False,
                     "temporal_single": False}
    runs = plan_sweep([LIDAR / "plain.yaml", LIDAR / "temporal_T2.yaml"], [2],
                      "/tmp/x")
    assert [r.recipe for r in runs] == [True, False]
    cmd = runs[0].command()
    assert cmd[1:4] == ["-m", "pointsam", "train"] and cmd[-1] == "--overwrite"
    assert "train.seed=2" in cmd and "train.num_threads=1" in cmd
    assert "train.progress=false" not in cmd  # the recipe has no progress bar
    assert "train.progress=false" in runs[1].command()
    cfg = runs[0].load()
    assert cfg["train"]["seed"] == 2 and cfg["train"]["out_dir"] == str(
        Path("/tmp/x").resolve() / "runs" / "plain" / "seed2")


def test_recipe_overrides_are_checked():
    cfg = load_lidar_config(LIDAR / "axial.yaml",
                            ["data.holdout.below=-90.5", "model.args.k=8"])
    assert cfg["data"]["holdout"] == {"axis": 1, "below": -90.5}
    assert cfg["model"]["args"] == {"attention": "axial", "k": 8}
    for bad, msg in (("train.stepz=3", "unknown key.*stepz"),
                     ("train.steps=0", "train.steps must be >= 1"),
                     ("train.seed=true", "train.seed: expected an integer"),
                     ("data.holdout.axis=3", "data.holdout must be"),
                     ("data.real_fraction=1.5", r"real_fraction must be in \[0, 1\]"),
                     ("train", "not section.key=value")):
        with pytest.raises(ConfigError, match=r"axial.yaml: .*" + msg):
            load_lidar_config(LIDAR / "axial.yaml", [bad])


def test_mixing_recipe_and_trainer_configs_is_refused(tmp_path):
    trainer = tmp_path / "seg.yaml"
    trainer.write_text("model: {name: pointnet2_lite_cls}\n"
                       "data: {name: synthetic_shapes, num_points: 64, "
                       "args: {num_samples: 8}}\n")
    out = tmp_path / "sweep"
    with pytest.raises(SweepError, match=r"(?s)nothing was run.*LiDAR recipe configs "
                       r"\(plain, axial\) cannot be swept with trainer configs "
                       r"\(seg\).*sweep them separately"):
        _sweep([str(LIDAR / "plain.yaml"), str(trainer), str(LIDAR / "axial.yaml"),
                "--seeds", "0", "--out", str(out)])
    assert not out.exists()


def test_bad_recipe_configs_are_all_reported_before_any_run(tmp_path, capsys):
    cfg = yaml.safe_load((LIDAR / "plain.yaml").read_text())
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({**cfg, "train": {**cfg["train"], "stepz": 5}}))
    args = tmp_path / "args.yaml"
    args.write_text(yaml.safe_dump({**cfg, "model": {
        "name": "pointnet2_lite_lidarseg", "args": {"bogus": 1}}}))
    nodata = tmp_path / "nodata.yaml"
    nodata.write_text(yaml.safe_dump({**cfg, "data": {
        **cfg["data"], "frames": str(tmp_path / "no_frames")}}))
    out = tmp_path / "sweep"
    rc = main(["sweep", str(typo), str(args), str(nodata), "--seeds", "0", "1",
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("pointsam: error: 3 problem(s); nothing was run")
    assert "unknown key(s) stepz in 'train'" in err
    assert "does not take model.args {'bogus': 1}" in err
    assert f"{tmp_path / 'no_frames' / 'points' / '000700.npy'} not found" in err
    assert not out.exists()


def test_a_recipe_run_folder_of_another_config_is_refused(tmp_path):
    run = plan_sweep([LIDAR / "plain.yaml"], [0], tmp_path)[0]
    old = run.load()
    old["train"] = {**old["train"], "steps": 7}
    run.out_dir.mkdir(parents=True)
    (run.out_dir / "summary.json").write_text(json.dumps(
        {"task": "semseg", "test": {"miou": 0.1, "oa": 0.5}, "config": old}))
    with pytest.raises(SweepError, match="holds a run of another config.*"
                       "train.steps: 7 there, 300 now"):
        check_plan([run], build=False)
