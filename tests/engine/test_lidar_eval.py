"""Whole-frame LiDAR evaluation and the real-frame training recipe."""

import json
from pathlib import Path

import torch
from torch import nn
from torch_geometric.data import Data

from pointsam.engine.lidar import (
    confusion_matrix,
    evaluate_scan,
    format_table,
    scores_from_confusion,
    train_lidar,
)


def test_confusion_leaves_out_unlabeled_points():
    t = torch.tensor([0, 0, 1, 2, -1, -1])
    p = torch.tensor([0, 1, 1, 1, 2, 0])
    assert confusion_matrix(t, p, 3).tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_scores_iou_present_classes_and_confusions():
    conf = torch.tensor([[8, 2, 0, 0], [0, 5, 0, 0], [0, 5, 5, 0], [0, 0, 0, 0]])
    s = scores_from_confusion(conf, ["a", "b", "c", "d"])
    assert s["iou"] == [0.8, round(5 / 12, 4), 0.5, 0.0]
    assert s["present"] == [0, 1, 2]  # d has no true point: not in the mean
    assert abs(s["miou"] - (0.8 + 5 / 12 + 0.5) / 3) < 1e-9
    assert abs(s["oa"] - 18 / 25) < 1e-12
    assert s["confusions"][0] == {"true": "c", "pred": "b", "points": 5,
                                  "share_of_true": 0.5}
    assert [c["true"] for c in s["confusions"]] == ["c", "a"]


class _BySign(nn.Module):
    """Class 1 where x > 0, else class 0 (and a parameter for the device)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, b):
        return torch.stack([-b.pos[:, 0], b.pos[:, 0]], 1) * 100 * self.w


def test_evaluate_scan_labels_every_point():
    pos = torch.randn(5000, 3) * 10
    y = (pos[:, 0] > 0).long()
    y[:100] = -1  # unlabeled: not scored
    y[100:200] = 1 - y[100:200]  # 100 wrong labels
    s = evaluate_scan(_BySign(), Data(pos=pos, y=y), voxel_size=0.0,
                      chunk_points=700, num_classes=2)
    assert s["points"] == 5000
    assert sum(map(sum, s["confusion"])) == 4900
    assert abs(s["oa"] - 4800 / 4900) < 1e-9


def test_train_lidar_smoke(tmp_path, shared_data):
    cfg = {
        "model": {"name": "pointnet2_lite_lidarseg", "args": {}},
        "data": {"frames": str(shared_data / "open3d_ml_demo_data/examples/demo_data"),
                 "train_frame": "000700", "test_frame": "000750",
                 "holdout": {"axis": 1, "below": -106.6}, "synthetic_scenes": 1,
                 "radius": 5.0, "max_points": 512, "voxel_size": 0.3},
        "train": {"steps": 2, "eval_every": 1, "out_dir": str(tmp_path),
                  "chunk_points": 30000},
    }
    m = train_lidar(cfg, log=lambda s: None)
    assert m["test"]["points"] == 86139  # every point of the held-out frame
    assert m["test"]["present"] == [0, 1, 4, 8, 10, 12, 13, 14, 15, 16, 17, 18]
    assert "parking" in m["never_in_training"] and "car" not in m["never_in_training"]
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["best_step"] in (1, 2)
    ck = torch.load(tmp_path / "best.pt", weights_only=True)
    assert "optimizer" not in ck and ck["model"] == "pointnet2_lite_lidarseg"
    m["label"] = "smoke"
    table = format_table([m])
    assert "| road | 10191 |" in table and "Top confusions, smoke" in table


def test_every_lidar_config_is_valid():
    import pytest
    import yaml

    from pointsam.engine.config import load_config
    from pointsam.engine.lidar import check_lidar_config
    from pointsam.models import list_models

    every = sorted((Path(__file__).resolve().parents[2] / "train" / "lidar")
                   .glob("*.yaml"))
    # the multi-scan configs are ordinary trainer configs (SyntheticLidar sequences)
    temporal = [p for p in every if p.stem.startswith("temporal_")]
    assert [p.stem for p in temporal] == ["temporal_T2", "temporal_single"]
    for p in temporal:
        assert load_config(p).model.name == "pointnet2_lite_temporal_lidarseg"
    paths = [p for p in every if p not in temporal]
    assert [p.stem for p in paths] == ["axial", "local_global", "plain", "plain_long"]
    for p in paths:
        cfg = yaml.safe_load(p.read_text())
        check_lidar_config(cfg)
        assert cfg["model"]["name"] in list_models()
    with pytest.raises(ValueError, match="unknown key.*stepz"):
        check_lidar_config({**cfg, "train": {**cfg["train"], "stepz": 1}})
    with pytest.raises(ValueError, match="missing train.steps"):
        check_lidar_config({**cfg, "train": {"out_dir": "x"}})
