"""LiDAR frames through the one trainer: ``pointsam train train/lidar/*.yaml``
and ``pointsam sweep`` treat them like any config.

The runs use the real configs with tiny overrides (3 steps of two 512-point
crops, a coarse 0.3 m voxel at evaluation): a run takes a few seconds, most of
it the whole-frame evaluations (every point of the 86,139-point test frame).
"""

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pointsam.cli import main
from pointsam.cli.sweep import add_parser, cmd_sweep
from pointsam.engine.config import ConfigError, load_config
from pointsam.engine.sweep import check_plan, plan_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import one_thread  # noqa: E402,F401

ROOT = Path(__file__).resolve().parents[2]
LIDAR = ROOT / "train" / "lidar"
FRAMES = "open3d_ml_demo_data/examples/demo_data"


def _tiny(shared_data, steps: int = 3) -> list[str]:
    """Overrides that make a LiDAR run take seconds (and learn a little)."""
    return [f"data.root={shared_data / FRAMES}", f"train.steps={steps}",
            "train.eval_every=1", "optim.warmup=0", "optim.lr=0.01",
            "data.batch_size=2", "data.args.max_points=512", "data.args.radius=5.0",
            "data.args.voxel_size=0.3", "train.voxel_size=0.3",
            "train.chunk_points=30000", "train.tensorboard=false"]


def _sweep(argv):
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers(dest="command"))
    logs = []
    return cmd_sweep(p.parse_args(["sweep", *argv]), log=logs.append), logs


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.dataset
def test_lidar_frames_splits(shared_data):
    """train: crops of 000700 outside the held-out region; val: that region,
    whole; test: frame 000750, whole; all in SemanticKITTI's train ids."""
    from pointsam.data import LidarFrames

    kw = dict(train_frames=["000700"], test_frames=["000750"],
              holdout={"axis": 1, "below": -106.6}, max_points=512, radius=5.0)
    root = shared_data / FRAMES
    tr, va, te = (LidarFrames(root, s, **kw) for s in ("train", "val", "test"))
    assert len(tr) == 4096 and len(va) == 1 and len(te) == 1
    (pool,) = tr._crops.real  # the frame less the held-out region
    assert float(pool.pos[:, 1].min()) >= -106.6
    assert va[0].pos.size(0) == 17309 and float(va[0].pos[:, 1].max()) < -106.6
    assert pool.pos.size(0) + va[0].pos.size(0) == 85962
    assert te[0].pos.size(0) == 86139  # every point of the test frame
    assert int((te[0].y == 8).sum()) == 10191  # road: learning id 9 -> train id 8
    crop = tr[5]
    assert crop.pos.size(0) <= 512 and crop.y.shape == (crop.pos.size(0),)
    assert torch.equal(tr[5].pos, crop.pos)  # item i is a fixed draw
    assert tr.num_classes == 19 and tr.classes[8] == "road"
    assert tr.class_counts().sum() == int((pool.y >= 0).sum())


@pytest.mark.dataset
def test_lidar_frames_bad_input(shared_data, tmp_path):
    from pointsam.data import DatasetNotFoundError, LidarFrames

    root = shared_data / FRAMES
    with pytest.raises(DatasetNotFoundError, match="000999.npy not found"):
        LidarFrames(root, train_frames=["000999"])
    with pytest.raises(ValueError, match="holdout must be"):
        LidarFrames(root, train_frames=["000700"], holdout={"axis": 3, "below": 0})
    with pytest.raises(ValueError, match="both must be non-empty"):
        LidarFrames(root, "val", train_frames=["000700"],
                    holdout={"axis": 1, "below": -500.0})
    with pytest.raises(ValueError, match="list of frame ids"):
        LidarFrames(root, train_frames="000700")
    # a test split needs its frames; an explicit [] says there is none
    with pytest.raises(ValueError, match="no test scan: give test_frames"):
        LidarFrames(root, "test", train_frames=["000700"])
    both = LidarFrames(root, "test", train_frames=["000700", "000750"],
                       test_frames=[])
    assert len(both) == 0
    # a frame with no labelled point cannot train
    (tmp_path / "points").mkdir()
    (tmp_path / "labels").mkdir()
    np.save(tmp_path / "points" / "1.npy", np.random.rand(50, 3).astype(np.float32))
    np.save(tmp_path / "labels" / "1.npy", np.zeros((50, 1), np.int32))
    with pytest.raises(ValueError, match="hold no labelled point"):
        LidarFrames(tmp_path, train_frames=["1"])
    # labels that do not match the points
    np.save(tmp_path / "labels" / "1.npy", np.zeros((49, 1), np.int32))
    from pointsam.data import CloudFormatError

    with pytest.raises(CloudFormatError, match="49 labels for 50 points"):
        LidarFrames(tmp_path, train_frames=["1"])


def test_steps_and_epochs_together_are_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train: {steps: 10, epochs: 3}\n")
    with pytest.raises(ConfigError, match="both set"):
        load_config(cfg)
    with pytest.raises(ConfigError, match="optim.warmup=10 must be shorter than "
                       "train.steps=10"):
        load_config(None, ["train.steps=10", "optim.warmup=10"])


def test_warmup_then_cosine_per_step(tmp_path):
    """optim.warmup steps of LinearLR from lr / warmup, then the cosine to
    min_lr over the remaining steps: SequentialLR, stepped once per step."""
    from pointsam.engine.config import config_from_dict
    from pointsam.engine.trainer import Trainer

    cfg = config_from_dict({
        "data": {"name": "synthetic_shapes", "num_points": 64, "batch_size": 4,
                 "args": {"num_samples": 16}},
        "optim": {"lr": 0.01, "warmup": 3, "min_lr": 0.001},
        "train": {"steps": 9, "eval_every": 9, "out_dir": str(tmp_path),
                  "progress": False, "tensorboard": False}})
    t = Trainer(cfg)
    lrs = []
    for _ in range(9):
        lrs.append(t.optimizer.param_groups[0]["lr"])
        t.optimizer.step()
        t.scheduler.step()
    t.release()
    warm = [0.01 * (1 / 3 + (2 / 3) * i / 3) for i in range(3)]
    cos = [0.001 + 0.009 * (1 + math.cos(math.pi * i / 6)) / 2 for i in range(6)]
    assert lrs == pytest.approx(warm + cos, rel=1e-6)
    assert isinstance(t.scheduler, torch.optim.lr_scheduler.SequentialLR)


def test_class_weights_weigh_the_loss():
    from pointsam.engine.tasks import SemSegTask, class_weights

    w = class_weights(torch.tensor([100, 25, 0, 1]))
    assert w[2] == 0 and w[3] == w.max() and torch.isclose(w[[0, 1, 3]].mean(),
                                                          torch.tensor(1.0))
    logits = torch.randn(6, 4)
    y = torch.tensor([0, 1, 3, -1, 0, 1])

    class D:
        pass

    d = D()
    d.y = y
    got = SemSegTask(4, class_weight=w).loss(logits, d)
    ref = torch.nn.functional.cross_entropy(logits, y, weight=w, ignore_index=-1)
    assert torch.allclose(got, ref)
    assert not torch.allclose(SemSegTask(4).loss(logits, d), ref)


@pytest.mark.dataset
def test_the_class_weighted_config_weighs_the_rare_classes_up(shared_data):
    """plain_cw.yaml is plain.yaml plus ``optim.class_weights: inverse_sqrt``:
    the weights come from the real training frame's counts, so car (a few
    hundred points of 000700) weighs more than vegetation (tens of thousands),
    a class absent from the frame weighs 0, and nothing else differs."""
    from pointsam.engine.builders import build_datasets, build_task
    from pointsam.engine.config import config_diff, config_to_dict

    plain = load_config(LIDAR / "plain.yaml", [f"data.root={shared_data / FRAMES}"])
    cw = load_config(LIDAR / "plain_cw.yaml", [f"data.root={shared_data / FRAMES}"])
    diff = {k for k, _, _ in config_diff(config_to_dict(plain), config_to_dict(cw), frozenset())}
    assert diff == {"optim.class_weights", "train.out_dir"}
    train = build_datasets(cw)["train"]
    counts = train.class_counts()  # [19] labelled points of 000700
    w = build_task(cw, train).class_weight  # [19]
    assert w is not None and build_task(plain, train).class_weight is None
    car, vegetation = 0, 14  # SemanticKITTI train ids
    assert 0 < counts[car] < counts[vegetation]
    assert w[car] > w[vegetation] > 0
    ratio = float(w[car] / w[vegetation])
    expect = float((counts[vegetation] / counts[car]) ** 0.5)
    assert float(w.max()) <= 10.0 + 1e-6  # the cap
    if float(w[car]) < 10.0:  # not capped: w ~ n^-1/2
        assert ratio == pytest.approx(expect, rel=1e-4)
    assert bool((w[counts == 0] == 0).all())


@pytest.mark.dataset
def test_pointsam_train_runs_a_lidar_config(tmp_path, shared_data, capsys):
    run = tmp_path / "run"
    argv = ["train", str(LIDAR / "plain.yaml"),
            *[a for o in _tiny(shared_data) for a in ("--set", o)],
            "--set", f"train.out_dir={run}", "--set", "optim.class_weights=inverse_sqrt",
            # the grid configs train on the whole frame; the val split of a
            # held-out region (and its selection) is tested here
            "--set", "data.args.holdout={axis: 0, above: 13.3}"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    summ = json.loads((run / "summary.json").read_text())
    assert summ["task"] == "semseg" and summ["unit"] == "step"
    assert summ["steps_run"] == summ["steps_planned"] == 3
    assert summ["best"]["step"] in (1, 2, 3)
    assert [h["step"] for h in summ["history"]] == [1, 2, 3]
    assert len(summ["test"]["iou"]) == 19
    assert f"miou={summ['test']['miou']:.4f}" in text
    from pointsam.engine.predict import load_trained

    model, task, cfg, meta = load_trained(run / "best.pt")  # one checkpoint format
    assert meta["class_names"][8] == "road" and task.num_classes == 19
    assert cfg.train.steps == 3 and cfg.optim.class_weights == "inverse_sqrt"
    assert "the dataset's own val split" in summ["selection"]

    # the library packs the run as a shipped model: same weights, its card
    from pointsam.engine.pretrained import pack_run
    from pointsam.models import create_model

    path = pack_run(run, "tiny_lidar", tmp_path / "zoo", command="pointsam train X")
    packed = torch.load(path, weights_only=True)
    assert packed["config"]["train"]["chunk_points"] == 30000
    again = create_model(packed["model"], **packed["args"]).eval()
    again.load_state_dict(packed["state_dict"])
    pos = torch.rand(3000, 3) * 20
    with torch.no_grad():
        assert torch.equal(again(pos=pos), model(pos=pos))
    card = path.with_suffix(".md").read_text()
    assert "pointsam train X" in card and "| road |" in card
    assert "non-commercial" in card


@pytest.mark.dataset
def test_a_both_frames_run_has_no_test_split_and_packs(tmp_path, shared_data):
    """The shipping configs train on every labelled frame (test_frames: []):
    no test is evaluated, and the card says so and lists the checks given."""
    run = tmp_path / "both"
    argv = ["train", str(LIDAR / "both_plain.yaml"),
            *[a for o in _tiny(shared_data, steps=2) for a in ("--set", o)],
            "--set", f"train.out_dir={run}"]
    assert main(argv) == 0
    summ = json.loads((run / "summary.json").read_text())
    assert summ["dataset_sizes"]["test"] == 0 and "miou" not in summ["test"]
    assert summ["config"]["data"]["args"]["train_frames"] == ["000700", "000750"]
    assert summ["selection"] == "none: no validation split, the last step is kept"
    assert summ["best"]["step"] == 2  # the last step
    from pointsam.engine.pretrained import pack_run

    path = pack_run(run, "tiny_both", tmp_path / "zoo",
                    metrics={"car_iou_004139": 0.5})
    packed = torch.load(path, weights_only=True)
    assert packed["metrics"] == {"car_iou_004139": 0.5}
    card = path.with_suffix(".md").read_text()
    assert "No test split" in card and "car_iou_004139: 0.5" in card
    assert "Selection: none: no validation split, the last step is kept" in card
    with pytest.raises(ValueError, match="must be a number"):
        pack_run(run, "tiny_both", tmp_path / "zoo", metrics={"x": "high"})

    # train/pack_pretrained.py: the card's notes from a file, the cross-drive
    # check's IoUs as metrics
    import runpy

    tool = runpy.run_path(str(ROOT / "train" / "pack_pretrained.py"), run_name="pack")
    check = {"kitti_004139": {"car": {"iou": 0.25}, "person": {"iou": 0.125}},
             "squeezeseg_0001": {"car": {"iou": 0.75}}}
    (run / "crossdrive_votes8.json").write_text(json.dumps(check))
    (tmp_path / "notes.md").write_text("- Trained on both frames.\n")
    tool["main"]([str(run), "tiny_tool", "pointsam train Y", "--notes",
                  str(tmp_path / "notes.md"), "--crossdrive",
                  str(run / "crossdrive_votes8.json"), "--metric", "extra=0.5",
                  "--out", str(tmp_path / "zoo2")])
    packed = torch.load(tmp_path / "zoo2" / "tiny_tool.pt", weights_only=True)
    assert packed["metrics"] == {"car_iou_kitti_004139": 0.25,
                                 "person_iou_kitti_004139": 0.125,
                                 "car_iou_drive_0001": 0.75, "extra": 0.5}
    card = (tmp_path / "zoo2" / "tiny_tool.md").read_text()
    assert "## Notes\n\n- Trained on both frames." in card
    assert "pointsam train Y" in card


class _Killed(Exception):
    pass


@pytest.mark.dataset
def test_a_killed_steps_run_resumes_to_the_uninterrupted_result(tmp_path, shared_data,
                                                                monkeypatch):
    """Stopped after round 2 of 4 (last.pt at step 2), then resumed: the same
    history, best step, weights and test scores as one whole run."""
    from pointsam.engine.trainer import Trainer

    sets = [*_tiny(shared_data, steps=4), "model.args.dropout=0.5"]

    def cfg(out):
        return load_config(LIDAR / "plain.yaml", [*sets, f"train.out_dir={out}",
                                                  "train.progress=false"])

    whole = Trainer(cfg(tmp_path / "whole")).fit()
    part = Trainer(cfg(tmp_path / "part"))
    assert part.fit(stop_after=2) == {"stopped_at_epoch": 2}
    part.release()
    resumed = Trainer(cfg(tmp_path / "part"), resume=True)
    assert resumed.step == 2
    again = resumed.fit()
    assert again["steps_run"] == whole["steps_run"] == 4
    assert again["best"] == whole["best"]
    strip = [[{k: v for k, v in h.items() if k != "epoch_time_s"} for h in s["history"]]
             for s in (whole, again)]
    assert strip[0] == strip[1]
    assert again["test"]["miou"] == whole["test"]["miou"]
    wa, wb = (torch.load(d / "best.pt", weights_only=True)["model"]
              for d in (tmp_path / "whole", tmp_path / "part"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
@pytest.mark.dataset
def test_tiny_lidar_sweep_end_to_end(tmp_path, shared_data):
    """`pointsam sweep` over two LiDAR configs: `pointsam train` children, the
    tables in steps (about 30 s on two cores)."""
    out = tmp_path / "sweep"
    sets = [a for o in _tiny(shared_data) for a in ("--set", o)]
    argv = [str(LIDAR / "plain.yaml"), str(LIDAR / "axial.yaml"), "--seeds", "0",
            *sets, "--jobs", "2", "--out", str(out)]
    runs = plan_sweep([argv[0], argv[1]], [0], out, _tiny(shared_data))
    assert check_plan(runs) == "semseg"
    rc, logs = _sweep(argv)
    assert rc == 0, logs
    rows = {r["config"]: r for r in _rows(out / "results.csv")}
    assert list(rows) == ["plain", "axial"]
    for n in ("plain", "axial"):
        s = json.loads((out / "runs" / n / "seed0" / "summary.json").read_text())
        assert float(rows[n]["miou_mean"]) == pytest.approx(s["test"]["miou"])
        assert rows[n]["steps_run"] == "3" and rows[n]["steps_planned"] == "3"
    md = (out / "results.md").read_text()
    assert "| step chosen | steps run |" in md and "every point of the test split" in md
    # holdout: null, so no validation split: the last step, nothing "chosen"
    assert "the weights of the last step (no validation split" in md
    assert "| - | 3 of 3 |" in md


@pytest.mark.dataset
def test_box_scans_train_their_classes_only(shared_data):
    """A box-labelled scan of another drive joins the crops' real scans with only
    its box points labelled (car, person, cyclist); the rest is ignored."""
    from pointsam.data import LidarFrames

    sq = shared_data / "squeezeseg_kitti_lidar2d/data/samples"
    k = shared_data / "kitti_object_sample/training/velodyne/004139.bin"
    files = sorted(sq.glob("*.npy"))[:1]
    if not files or not k.is_file():
        pytest.skip("the box-labelled scans are not there")
    kw = dict(train_frames=["000700"], test_frames=["000750"],
              holdout={"axis": 0, "above": 13.3})
    plain = LidarFrames(shared_data / FRAMES, **kw)
    boxed = LidarFrames(shared_data / FRAMES, box_scans=[str(files[0]), str(k)], **kw)
    assert len(boxed._crops.real) == 1 and len(boxed._crops.boxed) == 2
    assert boxed._crops.box_fraction == 0.25
    from_boxes = sum(int((boxed[i].y >= 0).sum() == 0) == 0 and
                     bool(((boxed[i].y == 0) | (boxed[i].y < 0)).all())
                     for i in range(40))
    assert 0 < from_boxes < 40  # some crops come from the boxed scans
    extra = boxed.class_counts() - plain.class_counts()
    assert extra[0] == 1858 + 296 and extra[5] == 1303 and extra[6] == 40
    assert int(extra.sum()) == 1858 + 296 + 1303 + 40  # nothing else is labelled
    with pytest.raises(ValueError, match="neither a SqueezeSeg"):
        LidarFrames(shared_data / FRAMES, box_scans=["scan.ply"], **kw)
