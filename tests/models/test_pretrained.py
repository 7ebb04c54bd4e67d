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
AXIAL = "pointnet2_lite_axial_lidarseg_kitti"
MODELNET = "pointnet2_lite_cbam_modelnet10"
LOCAL = "pointnet2_lite_local_modelnet10"
DEMO = "open3d_ml_demo_data/examples/demo_data"


def test_the_zoo_lists_the_shipped_models():
    assert list_pretrained() == sorted([LIDAR, AXIAL, MODELNET, LOCAL])


@pytest.mark.parametrize("name", [LIDAR, AXIAL, MODELNET, LOCAL])
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


@pytest.mark.parametrize("name", [LIDAR, AXIAL])
def test_lidar_models_score_their_cards_on_other_drives(shared_data, name):
    """The shipped LiDAR models trained on both labelled frames, so their card's
    checks are the other drives: car IoU against box-derived truth on KITTI
    004139 and drive 2011_09_26_0001 (and person on 004139, whose boxes hold
    17 pedestrians), with the votes their config names."""
    from pointsam.engine.crossdrive import cross_drive_check, cross_drive_scans

    torch.set_num_threads(1)
    m = load_pretrained(name)
    assert not m.training
    inf = m.pretrained["config"]["train"]
    assert m.pretrained["config"]["data"]["args"]["train_frames"] == ["000700",
                                                                      "000750"]
    r = cross_drive_check(m, cross_drive_scans(shared_data),
                          voxel_size=inf["voxel_size"],
                          chunk_points=inf["chunk_points"], votes=inf["votes"])
    got = {"car_iou_kitti_004139": r["kitti_004139"]["car"]["iou"],
           "person_iou_kitti_004139": r["kitti_004139"]["person"]["iou"],
           "car_iou_drive_0001": r["squeezeseg_0001"]["car"]["iou"]}
    assert set(m.pretrained["metrics"]) == set(got)  # the card lists each check
    for k, v in got.items():
        assert abs(v - m.pretrained["metrics"][k]) < 0.005, (k, v)
    assert got["car_iou_drive_0001"] > 0.2  # a trained model finds cars elsewhere


def test_the_axial_lidar_model_weighs_the_vertical_tube(shared_data):
    """Trained attention on a real scan: the shipped axial model's LAFF weights
    over its x/y/z tubes on KITTI 004139 are far from uniform (1/3 each)."""
    from pointsam.data import read_cloud
    from pointsam.nn import record_attention

    m = load_pretrained(AXIAL)
    d = read_cloud(shared_data / "kitti_object_sample/training/velodyne/004139.bin")
    near = d.pos[d.pos[:, :2].norm(dim=1) < 15]  # [n, 3] one crop around the car
    with torch.no_grad(), record_attention(m) as rec:
        m(pos=near[:20000])
    (axis,) = [w["axis"] for w in rec.values() if "axis" in w]  # [S, 3]
    assert axis.shape[1] == 3 and torch.allclose(axis.sum(1), torch.ones(len(axis)),
                                                 atol=1e-5)
    assert float((axis - 1 / 3).abs().max()) > 0.03  # not the uniform triple


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
