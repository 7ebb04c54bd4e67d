"""ModelNet in its published formats, checked against the MANIFEST facts."""

import shutil
from collections import Counter

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

from pointsam.data import (
    CloudFormatError,
    DatasetNotFoundError,
    ModelNet,
    NormalizeScale,
)

# MANIFEST.md section 1: train/test shapes per class
MN10_COUNTS = {
    "bathtub": (106, 50),
    "bed": (515, 100),
    "chair": (889, 100),
    "desk": (200, 86),
    "dresser": (200, 86),
    "monitor": (465, 100),
    "night_stand": (200, 86),
    "sofa": (680, 100),
    "table": (392, 100),
    "toilet": (344, 100),
}


@pytest.mark.parametrize("split,total", [("train", 3991), ("test", 908)])
def test_pcd_set_counts_from_index(shared_data, split, total):
    ds = ModelNet(shared_data / "modelnet10_pcd_1024", "10", split)  # index only
    assert ds.format == "points" and len(ds) == total
    counts = Counter(ds.classes[y] for y in ds.labels)
    want = {c: n[0 if split == "train" else 1] for c, n in MN10_COUNTS.items()}
    assert counts == want and ds.num_classes == 10
    assert all(f.stem.startswith(ds.classes[y]) for f, y in zip(ds.files, ds.labels))
    assert ds.files == sorted(
        ds.files, key=lambda f: (ds.classes.index(f.parent.parent.name), f.name)
    )
    for i in (0, len(ds) // 2, len(ds) - 1):  # read a few
        d = ds[i]
        assert d.pos.shape == (1024, 3) and d.pos.dtype == torch.float32
        assert d.y.shape == (1,) and d.y.item() == ds.labels[i]
        assert torch.isfinite(d.pos).all()


def test_pcd_through_pyg_loader(shared_data):
    ds = ModelNet(
        shared_data / "modelnet10_pcd_1024", "10", "test", transform=NormalizeScale()
    )
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch.pos.shape == (4096, 3) and batch.y.shape == (4,)
    assert batch.ptr.tolist() == [0, 1024, 2048, 3072, 4096]
    assert torch.allclose(
        batch.pos.norm(dim=1).view(4, -1).max(1).values, torch.ones(4)
    )


def test_off_sampling_cached_and_deterministic(shared_data, tmp_path):
    ds = ModelNet(
        shared_data / "ModelNet10", "10", "train", num_points=512, cache_dir=tmp_path
    )
    assert ds.format == "off"
    assert [f.stem for f in ds.files] == [f"bathtub_000{i}" for i in range(1, 6)] + [
        "sofa_0001",
        "table_0001",
    ]
    d = ds[0]
    assert d.pos.shape == (512, 3) and d.x.shape == (512, 3)
    assert torch.allclose(d.x.norm(dim=1), torch.ones(512), atol=1e-5)
    cached = sorted(tmp_path.rglob("*.npy"))
    assert len(cached) == 1 and "off_n512_s0" in str(cached[0])
    # points lie inside the mesh's bounding box
    from pointsam.data import read_off

    v, _ = read_off(ds.files[0])
    assert (d.pos.numpy() >= v.min(0) - 1e-3).all() and (
        d.pos.numpy() <= v.max(0) + 1e-3
    ).all()
    again = ModelNet(
        shared_data / "ModelNet10",
        "10",
        "train",
        num_points=512,
        cache_dir=tmp_path / "other",
    )[0]
    assert torch.equal(again.pos, d.pos)  # same seed -> same samples, fresh cache
    other_seed = ModelNet(
        shared_data / "ModelNet10",
        "10",
        "train",
        num_points=512,
        seed=1,
        cache_dir=tmp_path,
    )[0]
    assert not torch.equal(other_seed.pos, d.pos)
    assert len(sorted(tmp_path.rglob("off_n512_s1/**/*.npy"))) == 1


def test_off_cache_goes_to_processed_when_writable(shared_data, tmp_path):
    root = tmp_path / "ModelNet40"
    shutil.copytree(shared_data / "ModelNet40", root)
    for p in [root, *root.rglob("*")]:  # the shared copy is read-only
        p.chmod(0o755)
    ds = ModelNet(root, "40", "test", num_points=64)
    assert [ds.classes[y] for y in ds.labels] == ["desk", "monitor"]
    ds[1]
    assert (root / "processed/off_n64_s0/monitor/test/monitor_0466.npy").is_file()


def test_normal_resampled(shared_data, tmp_path):
    src = shared_data / "modelnet40_normal_resampled"
    names = sorted(p.stem for p in src.glob("*/*.txt"))[:3]
    assert "night_stand" in {
        n.rsplit("_", 1)[0] for n in (p.stem for p in src.glob("night_stand/*.txt"))
    }
    lst = tmp_path / "split.txt"
    lst.write_text("\n".join(names + [next(src.glob("night_stand/*.txt")).stem]) + "\n")
    ds = ModelNet(src, "40", "train", num_points=None, file_list=lst)
    assert ds.format == "normal_resampled" and len(ds) == 4
    for d, f in zip(ds, ds.files):
        assert d.pos.shape == (10000, 3) and d.x.shape == (10000, 3)
        assert torch.allclose(d.x.norm(dim=1), torch.ones(10000), atol=1e-3)
        assert float(d.pos.abs().max()) <= 1.0
        assert ds.classes[d.y.item()] == f.parent.name
    assert ds.classes[ds[3].y.item()] == "night_stand"
    assert ModelNet(src, "40", "train", num_points=1024, file_list=names)[
        0
    ].pos.shape == (1024, 3)


def test_normal_resampled_without_split_list(shared_data):
    with pytest.raises(
        DatasetNotFoundError,
        match=r"modelnet40_train\.txt.*file_list.*"
        r"datasets/README\.md",
    ):
        ModelNet(shared_data / "modelnet40_normal_resampled", "40", "train")


def test_hdf5_with_published_keys(tmp_path):
    h5py = pytest.importorskip("h5py")
    g = np.random.default_rng(0)
    data = g.normal(size=(5, 2048, 3)).astype(np.float32)
    normal = g.normal(size=(5, 2048, 3)).astype(np.float32)
    label = np.array([[0], [3], [39], [7], [2]], dtype=np.uint8)
    root = tmp_path / "modelnet40_ply_hdf5_2048"
    root.mkdir()
    for i, sl in enumerate((slice(0, 3), slice(3, 5))):
        with h5py.File(root / f"ply_data_test{i}.h5", "w") as h:
            h["data"], h["label"], h["normal"] = data[sl], label[sl], normal[sl]
    (root / "test_files.txt").write_text(
        "data/modelnet40_ply_hdf5_2048/ply_data_test0.h5\n"
        "data/modelnet40_ply_hdf5_2048/ply_data_test1.h5\n"
    )
    ds = ModelNet(root, "40", "test")
    assert ds.format == "hdf5" and len(ds) == 5
    assert [d.y.item() for d in ds] == [0, 3, 39, 7, 2]
    assert torch.equal(ds[4].pos, torch.from_numpy(data[4]))
    assert torch.equal(ds[4].x, torch.from_numpy(normal[4]))
    assert ds.classes[39] == "xbox"
    with h5py.File(root / "ply_data_test1.h5", "w") as h:  # published keys missing
        h["points"] = data[3:]
    with pytest.raises(CloudFormatError, match=r"ply_data_test1\.h5.*lacks.*data"):
        ModelNet(root, "40", "test")


def test_missing_root_and_bad_arguments(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"nowhere.*datasets/README\.md"):
        ModelNet(tmp_path / "nowhere", "10")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match=r"empty.*README"):
        ModelNet(tmp_path / "empty", "10")
    with pytest.raises(ValueError, match=r"\['train', 'test'\]"):
        ModelNet(tmp_path, "10", "val")
    with pytest.raises(ValueError, match="'10' or '40'"):
        ModelNet(tmp_path, "20")


def test_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("POINTSAM_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "ModelNet40")):
        ModelNet(None, "40")
    (tmp_path / "ModelNet40/cup/test").mkdir(parents=True)
    np.save(tmp_path / "ModelNet40/cup/test/cup_0080.npy", np.eye(3, dtype=np.float32))
    ds = ModelNet(None, "40", "test")
    assert len(ds) == 1 and ds.classes[ds[0].y.item()] == "cup"


@pytest.mark.parametrize("suffix", ["txt", "npy"])
def test_point_files_keep_unit_normals(tmp_path, suffix):
    rng = np.random.default_rng(1)
    n = rng.normal(size=(64, 3))
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    arr = np.concatenate([rng.normal(size=(64, 3)), n], 1).astype(np.float32)
    d = tmp_path / "ModelNet10/chair/test"
    d.mkdir(parents=True)
    (np.savetxt if suffix == "txt" else np.save)(d / f"chair_0001.{suffix}", arr)
    ds = ModelNet(tmp_path / "ModelNet10", "10", "test")
    np.testing.assert_allclose(ds[0].x.numpy(), arr[:, 3:], atol=1e-6)
    assert ModelNet(tmp_path / "ModelNet10", "10", "test",
                    use_normals=False)[0].x is None
    arr[:, 3:] *= 3.0  # three feature columns that are not unit vectors
    (np.savetxt if suffix == "txt" else np.save)(d / f"chair_0001.{suffix}", arr)
    assert ModelNet(tmp_path / "ModelNet10", "10", "test")[0].x is None


def test_read_only_root_caches_in_user_dir(shared_data, tmp_path, monkeypatch):
    root = tmp_path / "ro" / "ModelNet10"
    (root / "table" / "test").mkdir(parents=True)
    shutil.copy(
        shared_data / "ModelNet10/table/test/table_0393.off",
        root / "table/test/table_0393.off",
    )
    for p in [
        root / "table/test/table_0393.off",
        root / "table/test",
        root / "table",
        root,
    ]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    monkeypatch.setenv("POINTSAM_CACHE", str(tmp_path / "cache"))
    d = ModelNet(root, "10", "test", num_points=32)[0]
    assert d.pos.shape == (32, 3)
    assert not (root / "processed").exists()
    hits = sorted((tmp_path / "cache").rglob("table_0393.npy"))
    assert len(hits) == 1 and "off_n32_s0" in str(hits[0])
