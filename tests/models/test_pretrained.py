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
DEMO = "open3d_ml_demo_data/examples/demo_data"


def test_the_zoo_lists_both_models():
    assert list_pretrained() == sorted([LIDAR, MODELNET])


@pytest.mark.parametrize("name", [LIDAR, MODELNET])
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


def test_modelnet_model_classifies_real_test_shapes(shared_data):
    from pointsam.data import ModelNet
    from pointsam.engine.predict import predict_cloud
    from pointsam.engine.pretrained import load_pretrained_trained

    model, task, cfg, meta = load_pretrained_trained(MODELNET)
    ds = ModelNet(root=shared_data / "modelnet10_pcd_1024", name="10", split="test")
    idx = torch.linspace(0, len(ds) - 1, 20).long().tolist()  # every class
    right = sum(predict_cloud(model, task, cfg, ds[i])["label"] == int(ds[i].y)
                for i in idx)
    assert right >= 15, right
