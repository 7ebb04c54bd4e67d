"""ShapeNetPart from its published text files."""

import json
import shutil

import pytest
import torch

from pointsam.data import (
    SEG_CLASSES,
    CloudFormatError,
    DatasetNotFoundError,
    ShapeNetPart,
)

ROOT = "shapenetcore_partanno_segmentation_benchmark_v0_normal"
TABLES = [
    "04379243/1a00aa6b75362cc5b324368d54a7416f",
    "04379243/1a2abbc9712e2fffc3bd24f986301745",
]


def test_seg_classes_are_the_published_table():
    assert len(SEG_CLASSES) == 16
    parts = sorted(p for ps in SEG_CLASSES.values() for p in ps)
    assert parts == list(range(50))
    assert SEG_CLASSES["Table"] == [47, 48, 49] and SEG_CLASSES["Airplane"] == [
        0,
        1,
        2,
        3,
    ]


def test_table_shapes(shared_data):
    ds = ShapeNetPart(
        shared_data / ROOT,
        file_list=TABLES + ["04225987/1ad8d7573dc57ebc247a956ed3779e34"],
    )
    assert len(ds) == 3 and ds.num_parts == 50 and ds.num_categories == 16
    labels = [set(d.y.tolist()) for d in ds]
    assert labels == [{47, 48}, {47, 48, 49}, {45}]
    for d in ds:
        n = d.pos.size(0)
        assert 2475 <= n <= 2794 and d.x.shape == (n, 3) and d.y.shape == (n,)
        assert float(d.pos.abs().max()) < 0.5
        assert torch.allclose(d.x.norm(dim=1), torch.ones(n), atol=1e-3)
    assert [ds.categories[d.category.item()] for d in ds] == [
        "Table",
        "Table",
        "Skateboard",
    ]
    only = ShapeNetPart(
        shared_data / ROOT,
        file_list=TABLES + ["04225987/1ad8d7573dc57ebc247a956ed3779e34"],
        categories=["Table"],
    )
    assert len(only) == 2


def test_missing_split_json_is_a_clear_error(shared_data):
    with pytest.raises(
        DatasetNotFoundError, match=r"shuffled_train_file_list\.json.*file_list.*README"
    ):
        ShapeNetPart(shared_data / ROOT, "train")


def test_split_json_and_bad_labels(shared_data, tmp_path):
    root = tmp_path / ROOT
    shutil.copytree(shared_data / ROOT, root)
    (root / "train_test_split").mkdir()
    for s, entries in (
        ("train", [f"shape_data/{TABLES[0]}"]),
        ("val", [f"shape_data/{TABLES[1]}"]),
        ("test", []),
    ):
        (root / "train_test_split" / f"shuffled_{s}_file_list.json").write_text(
            json.dumps(entries)
        )
    assert (
        len(ShapeNetPart(root, "train")) == 1 and len(ShapeNetPart(root, "test")) == 0
    )
    assert len(ShapeNetPart(root, "trainval")) == 2
    f = root / f"{TABLES[0]}.txt"
    f.write_text(f.read_text().replace("47.000000", "3.000000", 1))
    with pytest.raises(CloudFormatError, match=r"1a00aa6b.*\.txt.*\[3\].*Table"):
        ShapeNetPart(root, "train")[0]
    with pytest.raises(ValueError, match="valid splits|one of"):
        ShapeNetPart(root, "all")
