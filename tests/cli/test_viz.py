"""``pointsam viz`` end to end, on checkpoints laid out as the engine writes them."""

import argparse

import numpy as np
import pytest
import torch

from pointsam.cli import viz as viz_cli
from pointsam.viz import read_ply, read_png, renderer_available

MN10_CHAIR = "modelnet10_pcd_1024/ModelNet10/pcd/chair/test/chair_0890.pcd"
KITTI_NPY = "open3d_ml_demo_data/examples/demo_data/points/000700.npy"
KITTI_LABELS = "open3d_ml_demo_data/examples/demo_data/labels/000700.npy"


@pytest.fixture(scope="session")
def open3d_renderer() -> str:
    """``"open3d"`` when the offscreen renderer starts here; otherwise a skip
    that says why (as in tests/viz/conftest.py)."""
    ok, why = renderer_available()
    if not ok:
        pytest.skip(f"Open3D OffscreenRenderer cannot start here: {why}")
    return "open3d"


def _checkpoint(path, model_name, model_args, data, task_meta, class_names=(),
                train=None):
    """A checkpoint with the layout of ``Trainer.state_dict`` (engine/trainer.py)."""
    from pointsam.engine.checkpoint import FORMAT, VERSION, save_checkpoint
    from pointsam.engine.config import config_from_dict, config_to_dict
    from pointsam.models import create_model

    torch.manual_seed(0)
    model = create_model(model_name, **model_args)
    cfg = config_from_dict({"model": {"name": model_name, "args": model_args},
                            "data": data, **({"train": train} if train else {})})
    state = {"format": FORMAT, "version": VERSION, "config": config_to_dict(cfg),
             "meta": {**task_meta, "model_name": model_name,
                      "model_args": dict(model_args),
                      "class_names": list(class_names)},
             "model": model.state_dict(), "epoch": 1}
    return save_checkpoint(state, path)


def _run(argv):
    parser = argparse.ArgumentParser(prog="pointsam")
    sub = parser.add_subparsers(dest="command", required=True)
    viz_cli.add_parser(sub)
    return viz_cli.run(parser.parse_args(["viz", *argv]))


def _printed(capsys):
    from pathlib import Path

    return [Path(s) for s in capsys.readouterr().out.split()]


@pytest.fixture(scope="module")
def cls_ckpt(tmp_path_factory):
    names = ["bathtub", "bed", "chair", "desk", "dresser", "monitor", "night_stand",
             "sofa", "table", "toilet"]
    return _checkpoint(tmp_path_factory.mktemp("ck") / "cls.pt", "pointnet2_lite_cls",
                       {"num_classes": 10, "attention": "cbam"},
                       {"name": "modelnet10", "num_points": 256},
                       {"task": "cls", "num_classes": 10}, names)


def test_cli_classification_checkpoint_on_a_real_file(cls_ckpt, shared_data, tmp_path,
                                                      capsys):
    out = tmp_path / "viz"
    rc = _run([str(cls_ckpt), str(shared_data / MN10_CHAIR), "--out", str(out),
               "--size", "320x200", "--backend", "numpy"])
    assert rc == 0
    paths = _printed(capsys)
    assert paths and all(p.is_file() and p.parent == out for p in paths)
    names = {p.name for p in paths}
    # pointnet2_lite_cls has two stages, each with CBAM: channel bars + point gate
    for stage in (0, 1):
        assert f"backbone_stages_{stage}_attn_channel__channel.png" in names
        assert f"backbone_stages_{stage}_attn_point__point.png" in names
        assert f"backbone_stages_{stage}_attn_point__point.ply" in names
    assert "input.png" in names
    for p in paths:
        if p.suffix == ".png":
            img = read_png(p)
            assert img.shape[1] == 320 and img.std() > 10
    ply = read_ply(out / "backbone_stages_0_attn_point__point.ply")
    assert 0 < len(ply["weight"]) <= 256  # stage-0 centres of the 256 input points
    assert ply["pos"].shape == (len(ply["weight"]), 3)
    assert ((ply["weight"] > 0) & (ply["weight"] < 1)).all()  # sigmoid gate


def test_cli_layer_and_errors(cls_ckpt, shared_data, tmp_path, capsys):
    out = tmp_path / "one"
    rc = _run([str(cls_ckpt), str(shared_data / MN10_CHAIR), "--out", str(out),
               "--layer", "backbone.stages.1.attn", "--query", "5", "--no-ply",
               "--size", "320x200", "--backend", "numpy"])
    assert rc == 0
    names = sorted(p.name for p in _printed(capsys))
    assert names == ["backbone_stages_1_attn_channel__channel.png",
                     "backbone_stages_1_attn_point__point.png", "input.png"]
    with pytest.raises(ValueError, match="recorded layers"):
        _run([str(cls_ckpt), str(shared_data / MN10_CHAIR), "--out", str(out),
              "--layer", "nope", "--backend", "numpy"])
    with pytest.raises(ValueError, match="out of range"):
        _run([str(cls_ckpt), str(shared_data / MN10_CHAIR), "--out", str(out),
              "--query", "100000", "--backend", "numpy"])
    with pytest.raises(FileNotFoundError, match="neither a file"):
        _run([str(cls_ckpt), str(tmp_path / "missing.ply"), "--out", str(out)])
    assert viz_cli.main([str(tmp_path / "no.pt"), "x", "--out", str(out)]) == 2


def test_cli_dataset_source(cls_ckpt, tmp_path, capsys):
    ck = _checkpoint(tmp_path / "syn.pt", "pointnet2_lite_cls",
                     {"num_classes": 12, "attention": "cbam", "in_channels": 0},
                     {"name": "synthetic_shapes", "num_points": 128,
                      "args": {"num_samples": 24, "num_points": 256}},
                     {"task": "cls", "num_classes": 12})
    rc = _run([str(ck), "synthetic_shapes:test:1", "--out", str(tmp_path / "d"),
               "--size", "320x200", "--backend", "numpy", "--no-ply"])
    assert rc == 0
    assert any(p.name == "input.png" for p in _printed(capsys))
    with pytest.raises(ValueError, match="out of range"):
        _run([str(ck), ":test:999", "--out", str(tmp_path / "d"), "--backend", "numpy"])


def test_cli_segmentation_checkpoint_on_a_kitti_frame(shared_data, tmp_path, capsys,
                                                      open3d_renderer):
    ck = _checkpoint(tmp_path / "seg.pt", "pointnet2_lite_semseg",
                     {"num_classes": 20, "attention": "local_global"},
                     {"name": "semantickitti", "num_points": 512},
                     {"task": "semseg", "num_classes": 20, "ignore_index": 0})
    out = tmp_path / "seg"
    rc = _run([str(ck), str(shared_data / KITTI_NPY), "--out", str(out),
               "--size", "320x240", "--backend", open3d_renderer])
    assert rc == 0
    paths = _printed(capsys)
    names = {p.name for p in paths}
    assert "labels.png" in names and "labels.ply" in names
    kinds = {n.rsplit("_", 1)[-1] for n in names if n.endswith(".png")}
    assert {"neighbour.png", "token.png", "branch.png"} <= kinds, names
    lab = read_ply(out / "labels.ply")
    assert len(lab["pred"]) == 512 and lab["pred"].min() >= 0 and lab["pred"].max() < 20
    for p in paths:
        if p.suffix == ".png":
            assert read_png(p).shape[1] == 320
            assert p.stat().st_size < 200_000
    # the source frame is real SemanticKITTI (labels 0..19, in the file's class space)
    assert np.load(shared_data / KITTI_LABELS).max() <= 19


def test_cli_partseg_predictions_stay_in_the_shape_category(tmp_path, capsys):
    from pointsam.data import SyntheticParts

    parts = [list(p) for p in SyntheticParts.seg_classes.values()]
    ck = _checkpoint(tmp_path / "parts.pt", "pointnet2_lite_partseg",
                     {"num_classes": 13, "num_categories": 5, "attention": "cbam"},
                     {"name": "synthetic_parts", "num_points": 256,
                      "args": {"num_samples": 10, "num_points": 512}},
                     {"task": "partseg", "num_classes": 13, "category_parts": parts})
    out = tmp_path / "viz"
    rc = _run([str(ck), "synthetic_parts:test:3", "--out", str(out), "--layer",
               "backbone.stages.0.attn.point", "--size", "200x160", "--views", "iso",
               "--backend", "numpy"])
    assert rc == 0
    assert "labels.ply" in {p.name for p in _printed(capsys)}
    lab = read_ply(out / "labels.ply")
    true = set(lab["label"].tolist())
    cat = next(c for c, p in enumerate(parts) if true <= set(p))  # sample 3: a Mug
    assert set(lab["pred"].tolist()) <= set(parts[cat])
    with pytest.raises(ValueError, match=r"--category must be in 0\.\.4, got 9"):
        _run([str(ck), "synthetic_parts:test:3", "--out", str(out), "--category",
              "9", "--backend", "numpy"])


def _xyz_scan(path, n=1500):
    """A flat 'scan' whose feature column repeats x, to check point alignment."""
    g = np.random.default_rng(0)
    pos = np.c_[g.uniform(-20, 20, (n, 2)), g.normal(0, 0.2, n)]
    np.savetxt(path, np.c_[pos, pos[:, :1]], fmt="%.5f")
    return path


def test_num_points_subsamples_a_whole_scan(tmp_path):
    from pointsam.engine.config import config_from_dict

    src = str(_xyz_scan(tmp_path / "scan.xyz"))
    for train in ({"voxel_size": 0.2}, {"chunk_points": 500}):
        cfg = config_from_dict({"model": {"name": "pointnet2_lite_semseg"},
                                "data": {"name": "semantickitti", "num_points": 512},
                                "train": train})
        assert viz_cli.load_source(src, cfg).pos.shape == (1500, 3)  # every point
        d = viz_cli.load_source(src, cfg, num_points=300)
        assert d.pos.shape == (300, 3) and d.x.shape == (300, 1)
        assert torch.equal(d.x[:, 0], d.pos[:, 0])  # features stay with points
        assert viz_cli.load_source(src, cfg, num_points=4000).pos.shape == (1500, 3)
    with pytest.raises(ValueError, match="must be positive"):
        viz_cli.load_source(src, cfg, num_points=0)


def test_cli_num_points_on_a_whole_scan_checkpoint(tmp_path, capsys):
    ck = _checkpoint(tmp_path / "scan.pt", "pointnet2_lite_semseg",
                     {"num_classes": 4, "attention": "cbam"},
                     {"name": "semantickitti", "num_points": 512},
                     {"task": "semseg", "num_classes": 4, "ignore_index": -1},
                     train={"voxel_size": 0.2})
    out = tmp_path / "seg"
    rc = _run([str(ck), str(_xyz_scan(tmp_path / "scan.xyz")), "--out", str(out),
               "--num-points", "256", "--layer", "backbone.stages.0.attn.point",
               "--size", "200x160", "--views", "iso", "--backend", "numpy"])
    assert rc == 0
    assert "labels.ply" in {p.name for p in _printed(capsys)}
    assert len(read_ply(out / "labels.ply")["pred"]) == 256
