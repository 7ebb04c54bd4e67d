"""The model zoo: shipped weights load safely and still score what their cards say."""

import pytest
import torch

from pointsam.models.pretrained import (
    MAX_BYTES,
    list_pretrained,
    load_pretrained,
    model_card,
    pretrained_info,
    pretrained_path,
)

LIDAR = "pointnet2_lite_lidarseg_kitti"
MODELNET = "pointnet2_lite_cbam_modelnet10"
LOCAL = "pointnet2_lite_local_modelnet10"
DEMO = "open3d_ml_demo_data/examples/demo_data"


def test_the_zoo_lists_the_shipped_models():
    assert list_pretrained() == sorted([LIDAR, MODELNET, LOCAL])


@pytest.mark.parametrize("name", [LIDAR, MODELNET, LOCAL])
def test_files_are_small_safe_and_documented(name):
    path = pretrained_path(name)
    assert path.stat().st_size <= MAX_BYTES
    state = torch.load(path, weights_only=True)  # no pickled code
    assert state["format"] == "pointsam-pretrained" and state["name"] == name
    assert "optimizer" not in state and state["state_dict"]
    card = model_card(name)
    for word in ("Training data", "Metrics", "Classes", "Input", "Licence",
                 "non-commercial"):
        assert word in card, word
    info = pretrained_info(name)
    assert "state_dict" not in info and len(info["classes"]) in (10, 19)


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match=f"unknown pretrained model 'nope'.*{LIDAR}"):
        load_pretrained("nope")


def test_lidar_model_scores_its_card_on_the_held_out_frame(shared_data):
    from pointsam.data.lidar_frames import read_learning_frame
    from pointsam.engine.inference import predict_scan
    from pointsam.engine.metrics import SemSegMetrics

    torch.set_num_threads(1)
    m = load_pretrained(LIDAR)
    assert not m.training
    frame = read_learning_frame(shared_data / DEMO / "points/000750.npy",
                                shared_data / DEMO / "labels/000750.npy")
    inf = m.pretrained["config"]["train"]
    prob = predict_scan(m, frame, voxel_size=inf["voxel_size"],
                        chunk_points=inf["chunk_points"])  # every point
    metric = SemSegMetrics(19)  # the one mIoU
    metric.update(prob.argmax(1), frame.y)
    s = metric.compute()
    assert abs(s["miou"] - m.pretrained["metrics"]["test_miou"]) < 0.005
    assert abs(s["oa"] - m.pretrained["metrics"]["test_oa"]) < 0.005
    assert s["oa"] > 0.5  # a trained model, not chance (1/19)


@pytest.mark.parametrize("name", [MODELNET, LOCAL])
def test_modelnet_model_classifies_real_test_shapes(shared_data, name):
    from pointsam.data import ModelNet
    from pointsam.engine.predict import predict_cloud
    from pointsam.engine.pretrained import load_pretrained_trained

    model, task, cfg, meta = load_pretrained_trained(name)
    ds = ModelNet(root=shared_data / "modelnet10_pcd_1024", name="10", split="test")
    idx = torch.linspace(0, len(ds) - 1, 20).long().tolist()  # every class
    right = sum(predict_cloud(model, task, cfg, ds[i])["label"] == int(ds[i].y)
                for i in idx)
    assert right >= 15, right


def test_the_local_model_shows_trained_neighbour_weights(shared_data, tmp_path):
    """`viz --model` of the shipped neighbourhood-attention classifier on a real
    chair: a click map of neighbour weights per stage, each row a softmax over
    the 16 nearest centres (sums to 1), not uniform (a trained model weighs)."""
    import json
    import re

    from pointsam.cli import main

    chair = (shared_data / "modelnet10_pcd_1024/ModelNet10/pcd/chair/test/"
             "chair_0890.pcd")
    out = tmp_path / "v.html"
    assert main(["viz", "--model", LOCAL, str(chair), "--html", str(out)]) == 0
    scene = json.loads(re.search(r'id="pointsam-scene">(.*?)</script>',
                                 out.read_text(), re.S).group(1))
    clicks = [m for m in scene["maps"] if m.get("click") == "neighbour"]
    assert len(clicks) == 2, [m.get("name") for m in scene["maps"]]
    model = load_pretrained(LOCAL)
    from torch_geometric.data import Batch

    from pointsam.data import Compose, FixedPoints, NormalizeScale, read_cloud
    from pointsam.viz import capture

    data = Compose([NormalizeScale(), FixedPoints(512, method="fps")])(
        read_cloud(chair))
    with torch.no_grad(), capture(model) as weights:
        model(Batch.from_data_list([data]))
    for stage in ("backbone.stages.0.attn", "backbone.stages.1.attn"):
        a = weights[stage]["attn"].float()  # [S, K, H]
        assert torch.allclose(a.sum(1), torch.ones(a.shape[0], a.shape[2]),
                              atol=1e-4)
        assert a.amax(1).mean() > 2.0 / a.shape[1]  # peaked, not 1/K everywhere
