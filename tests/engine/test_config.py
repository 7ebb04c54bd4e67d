"""Config loading: YAML + overrides into dataclasses; every train/*.yaml is valid."""

from pathlib import Path

import pytest

from pointsam.engine.config import (
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    valid_keys,
)

TRAIN = Path(__file__).resolve().parents[2] / "train"


def test_defaults_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train: {epochs: 3}\nmodel: {name: dgcnn_cls, args: {k: 10}}\n")
    cfg = load_config(
        p,
        [
            "train.epochs=5",
            "model.args.attention=[null, cbam]",
            "optim.lr=1e-2",
            "data.root=/x",
        ],
    )
    assert cfg.train.epochs == 5 and cfg.model.args == {
        "k": 10,
        "attention": [None, "cbam"],
    }
    assert cfg.optim.lr == 0.01 and isinstance(cfg.optim.lr, float)
    assert cfg.data.root == "/x" and cfg.data.batch_size == 16  # default kept
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'train.epoch'.*epochs"):
        load_config(None, ["train.epoch=3"])
    p = tmp_path / "c.yaml"
    p.write_text("data: {nme: modelnet10}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'data.nme'.*name"):
        load_config(p)
    with pytest.raises(ConfigError, match="valid sections: model, data, optim, train"):
        config_from_dict({"trainer": {}})
    with pytest.raises(ConfigError, match="valid keys"):
        apply_overrides({}, ["epochs=3"])


def test_bad_values_list_valid_values():
    with pytest.raises(ConfigError, match="valid values: adamw, adam, sgd"):
        load_config(None, ["optim.name=lamb"])
    with pytest.raises(ConfigError, match="valid values: modelnet10, modelnet40"):
        load_config(None, ["data.name=mnist"])
    with pytest.raises(ConfigError, match="expected an integer"):
        load_config(None, ["train.epochs=three"])
    with pytest.raises(ConfigError, match="expected true or false"):
        load_config(None, ["train.amp=1"])
    with pytest.raises(ConfigError, match=">= 1"):
        load_config(None, ["data.batch_size=0"])
    with pytest.raises(ConfigError, match="val_fraction"):
        load_config(None, ["data.val_fraction=1.5"])
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(None, ["train.epochs"])


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config("no/such.yaml")


def test_valid_keys_cover_sections():
    keys = valid_keys()
    assert {"model.name", "data.root", "optim.lr", "train.seed"} <= set(keys)


CONFIGS = sorted(TRAIN.glob("*.yaml"))


def test_required_configs_exist():
    names = {p.stem for p in CONFIGS}
    for mn in ("10", "40"):
        for bb in ("pointnet2", "dgcnn"):
            for att in ("plain", "cbam", "local_global", "axial"):
                assert f"modelnet{mn}_{bb}_{att}" in names
    assert {
        "synthetic_shapes",
        "synthetic_parts",
        "synthetic_lidar",
        "shapenetpart_pointnet2",
        "semantickitti_pointnet2",
        "modelnet10_pointnet2_lite",
        "modelnet10_dgcnn_lite",
        "modelnet10_pointnet2_lite_cbam",
    } <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_loads_and_names_a_model(path):
    models = pytest.importorskip("pointsam.models")
    cfg = load_config(path)
    assert cfg.model.name in models.list_models()
    att = cfg.model.args.get("attention")
    if isinstance(att, str):
        assert att in models.ATTENTION
