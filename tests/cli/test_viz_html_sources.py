"""``pointsam viz ... --html``: every source of a model and of a cloud, the
viewer's default point budget and its memory refusal."""

import argparse
import json
import re

import numpy as np
import pytest
import torch

from pointsam.cli import main as cli_main
from pointsam.cli import viz as viz_cli

MN10_CHAIR = "modelnet10_pcd_1024/ModelNet10/pcd/chair/test/chair_0890.pcd"
SHIPPED = "pointnet2_lite_cbam_modelnet10"


def _checkpoint(path, model_name, model_args, data, task_meta):
    """A checkpoint with the layout of ``Trainer.state_dict`` (as in test_viz.py)."""
    from pointsam.engine.checkpoint import FORMAT, VERSION, save_checkpoint
    from pointsam.engine.config import config_from_dict, config_to_dict
    from pointsam.models import create_model

    torch.manual_seed(0)
    model = create_model(model_name, **model_args)
    cfg = config_from_dict({"model": {"name": model_name, "args": model_args},
                            "data": data})
    n = task_meta.get("num_classes", 0)
    state = {"format": FORMAT, "version": VERSION, "config": config_to_dict(cfg),
             "meta": {**task_meta, "model_name": model_name,
                      "model_args": dict(model_args),
                      "class_names": [f"class{i}" for i in range(n)]},
             "model": model.state_dict(), "epoch": 1}
    return save_checkpoint(state, path)


@pytest.fixture(scope="module")
def cls_ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("ck") / "cls.pt", "pointnet2_lite_cls",
                       {"num_classes": 10, "attention": "cbam"},
                       {"name": "modelnet10", "num_points": 256},
                       {"task": "cls", "num_classes": 10})


@pytest.fixture(scope="module")
def synthetic_ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("ck") / "syn.pt", "pointnet2_lite_cls",
                       {"num_classes": 12, "attention": "cbam", "in_channels": 0},
                       {"name": "synthetic_shapes", "num_points": 128,
                        "args": {"num_samples": 24, "num_points": 256}},
                       {"task": "cls", "num_classes": 12})


def _run(argv):
    parser = argparse.ArgumentParser(prog="pointsam")
    sub = parser.add_subparsers(dest="command", required=True)
    viz_cli.add_parser(sub)
    return viz_cli.run(parser.parse_args(["viz", *argv]))


def _page(path):
    """The page's ``<title>`` and its scene, after checking it is a whole page."""
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert 'src="http' not in page  # offline: nothing fetched
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    scene = json.loads(re.search(r'id="pointsam-scene">(.*?)</script>', page,
                                 re.S).group(1))
    assert scene["clouds"] and scene["clouds"][0]["total"] > 0
    assert any(m["layer"] != "input" for m in scene["maps"])  # attention maps
    return title, scene


def test_every_source_writes_a_page(cls_ckpt, synthetic_ckpt, shared_data,
                                    tmp_path, capsys):
    chair = str(shared_data / MN10_CHAIR)
    cases = {
        "checkpoint_file": ([str(cls_ckpt), chair], "cls.pt on chair_0890.pcd"),
        "model_file": (["--model", SHIPPED, chair], f"{SHIPPED} on chair_0890.pcd"),
        "checkpoint_dataset": ([str(synthetic_ckpt), "synthetic_shapes:test:0"],
                               "syn.pt on synthetic_shapes:test:0"),
        "checkpoint_own_dataset": ([str(synthetic_ckpt), ":test:1"],
                                   "syn.pt on :test:1"),
    }
    for name, (argv, title) in cases.items():
        out = tmp_path / f"{name}.html"
        assert _run([*argv, "--html", str(out)]) == 0, name
        assert capsys.readouterr().out.split() == [str(out)], name
        got, scene = _page(out)
        assert got.startswith(title), (name, got)
        assert scene["title"] == got


def test_model_source_with_figures_and_page(shared_data, tmp_path, capsys):
    # --model with --out and --html: the PNGs, then the page (was: TypeError)
    out, html = tmp_path / "figs", tmp_path / "v.html"
    assert _run(["--model", SHIPPED, str(shared_data / MN10_CHAIR), "--out", str(out),
                 "--html", str(html), "--backend", "numpy", "--no-ply",
                 "--size", "160x120", "--views", "iso"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1] == str(html) and any(p.endswith(".png") for p in printed)
    assert _page(html)[0].startswith(f"{SHIPPED} on chair_0890.pcd | predicted: ")


def test_default_budget_is_stated_and_zero_shows_every_point(
        cls_ckpt, shared_data, tmp_path, monkeypatch, capsys):
    from pointsam.viz import scene as scene_mod

    assert scene_mod.DEFAULT_MAX_POINTS == 200_000
    monkeypatch.setattr(scene_mod, "DEFAULT_MAX_POINTS", 100)  # the CLI's default
    chair = str(shared_data / MN10_CHAIR)
    sub, every = tmp_path / "sub.html", tmp_path / "all.html"
    assert _run([str(cls_ckpt), chair, "--html", str(sub)]) == 0
    assert _run([str(cls_ckpt), chair, "--html", str(every),
                 "--html-max-points", "0"]) == 0
    capsys.readouterr()
    notes = _page(sub)[1]["notes"]
    assert any("ran on the 100 shown points, a random subsample of the 256 "
               "given" in n for n in notes), notes
    assert not any("shown" in n or "showing" in n for n in _page(every)[1]["notes"])
    with pytest.raises(ValueError, match="--html-max-points must be positive"):
        _run([str(cls_ckpt), chair, "--html", str(sub), "--html-max-points", "-1"])


def _gate_page(n: int, max_points: int) -> str:
    from pointsam.nn import PointGate
    from pointsam.viz import capture, capture_inputs
    from pointsam.viz.html import to_html

    g = torch.Generator().manual_seed(n)
    gate, pos = PointGate(4, k=4), torch.randn(n, 3, generator=g)
    with capture(gate) as rec, capture_inputs(gate) as inputs:
        gate(torch.randn(n, 4, generator=g), pos)
    return to_html(rec, pos, inputs=inputs, max_points=max_points)


def test_page_is_bounded_by_the_budget():
    small, large = _gate_page(4_000, 1_000), _gate_page(16_000, 1_000)
    assert abs(len(large) - len(small)) < 0.01 * len(small)
    assert len(_gate_page(16_000, 4_000)) > len(small) + 50_000  # and does grow


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """A 10,000-point scan file and a whole-scan semseg checkpoint for it."""
    tmp = tmp_path_factory.mktemp("scan")
    g = np.random.default_rng(0)
    path = tmp / "scan.npy"
    np.save(path, (g.random((10_000, 3)) * [40, 40, 3]).astype(np.float32))
    ck = _checkpoint(tmp / "seg.pt", "pointnet2_lite_semseg",
                     {"num_classes": 5, "attention": "local"},
                     {"name": "semantickitti", "num_points": 10_000},
                     {"task": "semseg", "num_classes": 5, "ignore_index": 0})
    return ck, path


def test_a_viewer_the_machine_has_no_memory_for_is_refused(scan, tmp_path,
                                                            monkeypatch, capsys):
    from pointsam.viz import html as html_mod

    ck, path = scan
    monkeypatch.setattr(html_mod, "available_memory", lambda: 5 * 2**20)
    out = tmp_path / "v.html"
    rc = cli_main(["viz", str(ck), str(path), "--html", str(out),
                   "--html-max-points", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert re.match(r"pointsam: error: the viewer of 10,000 points \(10,000 shown\) "
                    r"would need about \d+ MiB of memory, and 5 MiB is "
                    r"available: show fewer points .*--html-max-points", err[0]), err
    assert not out.exists()


def test_memory_estimate_is_linear_in_the_points(scan, monkeypatch):
    from torch_geometric.data import Data

    from pointsam.models import create_model
    from pointsam.viz import html as html_mod

    model = create_model("pointnet2_lite_semseg", num_classes=5,
                         attention="local").eval()
    pos = torch.rand(40_000, 3) * 40
    one = html_mod.viewer_memory(model, Data(pos=pos[:20_000]), None)
    two = html_mod.viewer_memory(model, Data(pos=pos), None)
    assert 1.9 < two / one < 2.1
    # the budget bounds what is shown: a smaller budget needs less
    assert html_mod.viewer_memory(model, Data(pos=pos), 1_000) < two
    monkeypatch.setattr(html_mod, "available_memory", lambda: 2 * two)
    html_mod.check_viewer_memory(model, Data(pos=pos), None)  # fits: no error
    monkeypatch.setattr(html_mod, "available_memory", lambda: two // 2)
    with pytest.raises(ValueError, match=r"would need about .* of memory"):
        html_mod.check_viewer_memory(model, Data(pos=pos), None)


def test_the_model_runs_on_the_shown_points_past_the_budget(tmp_path):
    """Past the budget the forward pass (which records every weight of every
    point) sees only the shown subsample, so its memory is bounded by the
    budget; the page says so, and the labels are those of the shown points."""
    from torch_geometric.data import Data

    from pointsam.models import create_model
    from pointsam.viz.html import to_html

    model = create_model("pointnet2_lite_semseg", num_classes=5,
                         attention="local").eval()
    seen = []
    model.register_forward_pre_hook(
        lambda m, a, kw: seen.append((kw.get("pos") if "pos" in kw else
                                      getattr(a[0], "pos", None)).size(0)),
        with_kwargs=True)
    g = torch.Generator().manual_seed(0)
    data = Data(pos=torch.rand(3_000, 3, generator=g) * 10,
                y=torch.randint(5, (3_000,), generator=g))
    page = to_html(model, data, tmp_path / "v.html", max_points=1_000)
    assert seen == [1_000]
    notes = _page(page)[1]["notes"]
    assert notes[0].startswith("the model ran on the 1,000 shown points, a random "
                               "subsample of the 3,000 given"), notes
    seen.clear()
    to_html(model, data, tmp_path / "all.html", max_points=None)
    assert seen == [3_000]


def test_memory_estimate_stops_growing_at_the_budget():
    from torch_geometric.data import Data

    from pointsam.models import create_model
    from pointsam.viz import html as html_mod

    model = create_model("pointnet2_lite_semseg", num_classes=5,
                         attention="local").eval()
    pos = torch.rand(40_000, 3) * 40
    one = html_mod.viewer_memory(model, Data(pos=pos[:20_000]), 10_000)
    two = html_mod.viewer_memory(model, Data(pos=pos), 10_000)
    assert abs(two - one) < 0.05 * one  # bounded by the budget, not by the scan
    assert html_mod.viewer_memory(model, Data(pos=pos), None) > 3 * two
