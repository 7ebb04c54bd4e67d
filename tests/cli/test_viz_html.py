"""``pointsam viz ... --html OUT.html``: the viewer from a checkpoint."""

import argparse
import json
import re

import pytest
import torch

from pointsam.cli import viz as viz_cli

MN10_CHAIR = "modelnet10_pcd_1024/ModelNet10/pcd/chair/test/chair_0890.pcd"


@pytest.fixture(scope="module")
def cls_ckpt(tmp_path_factory):
    """A classification checkpoint with the layout of ``Trainer.state_dict``."""
    from pointsam.engine.checkpoint import FORMAT, VERSION, save_checkpoint
    from pointsam.engine.config import config_from_dict, config_to_dict
    from pointsam.models import create_model

    args = {"num_classes": 10, "attention": "cbam"}
    torch.manual_seed(0)
    model = create_model("pointnet2_lite_cls", **args)
    cfg = config_from_dict({"model": {"name": "pointnet2_lite_cls", "args": args},
                            "data": {"name": "modelnet10", "num_points": 256}})
    names = [f"class{i}" for i in range(10)]
    state = {"format": FORMAT, "version": VERSION, "config": config_to_dict(cfg),
             "meta": {"task": "cls", "num_classes": 10, "class_names": names,
                      "model_name": "pointnet2_lite_cls", "model_args": args},
             "model": model.state_dict(), "epoch": 1}
    return save_checkpoint(state, tmp_path_factory.mktemp("ck") / "cls.pt")


def _run(argv):
    parser = argparse.ArgumentParser(prog="pointsam")
    sub = parser.add_subparsers(dest="command", required=True)
    viz_cli.add_parser(sub)
    return viz_cli.run(parser.parse_args(["viz", *argv]))


def test_html_alone_writes_the_viewer(cls_ckpt, shared_data, tmp_path, capsys):
    out = tmp_path / "v.html"
    assert _run([str(cls_ckpt), str(shared_data / MN10_CHAIR), "--html", str(out),
                 "--html-max-points", "100"]) == 0
    assert capsys.readouterr().out.split() == [str(out)]
    page = out.read_text()
    scene = json.loads(re.search(r'id="pointsam-scene">(.*?)</script>', page,
                                 re.S).group(1))
    names = {(m["layer"], m["name"]) for m in scene["maps"]}
    assert ("backbone.stages.0.attn.point", "point gate") in names
    assert ("backbone.stages.0.attn.channel", "channel gate") in names
    # the config's num_points (256) past the budget: the model runs on the 100 shown
    assert scene["clouds"][0]["total"] == 100
    assert any("ran on the 100 shown points, a random subsample of the 256 given"
               in n for n in scene["notes"])
    assert "| predicted: class" in scene["title"]


def test_out_or_html_is_needed(cls_ckpt, shared_data):
    with pytest.raises(ValueError, match="--out DIR .* and/or --html FILE"):
        _run([str(cls_ckpt), str(shared_data / MN10_CHAIR)])
