r"""ModelNet10/40 in its published formats."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torch import Tensor
from torch_geometric.data import Data

from ._common import (
    CloudFormatError,
    cache_dir_for,
    data_root,
    make_data,
    missing,
    save_npy_atomic,
)
from .base import PointDataset
from .io import read_cloud, read_normal_resampled, read_off, sample_surface
from .transforms import has_normals

__all__ = ["ModelNet", "MODELNET10_CLASSES", "MODELNET40_CLASSES"]

MODELNET10_CLASSES = (
    "bathtub",
    "bed",
    "chair",
    "desk",
    "dresser",
    "monitor",
    "night_stand",
    "sofa",
    "table",
    "toilet",
)
MODELNET40_CLASSES = (
    "airplane",
    "bathtub",
    "bed",
    "bench",
    "bookshelf",
    "bottle",
    "bowl",
    "car",
    "chair",
    "cone",
    "cup",
    "curtain",
    "desk",
    "door",
    "dresser",
    "flower_pot",
    "glass_box",
    "guitar",
    "keyboard",
    "lamp",
    "laptop",
    "mantel",
    "monitor",
    "night_stand",
    "person",
    "piano",
    "plant",
    "radio",
    "range_hood",
    "sink",
    "sofa",
    "stairs",
    "stool",
    "table",
    "tent",
    "toilet",
    "tv_stand",
    "vase",
    "wardrobe",
    "xbox",
)
_POINT_SUFFIXES = (".pcd", ".ply", ".xyz", ".npy", ".txt", ".pts")
FORMATS = ("auto", "off", "points", "normal_resampled", "hdf5")


def _shape_class(shape_id: str) -> str:
    """``night_stand_0001`` -> ``night_stand``."""
    return shape_id.rsplit("_", 1)[0]


def _normals_of(d: Data) -> Tensor | None:
    """The normals among a point file's features, [N, 3], or ``None``
    (:func:`~pointsam.data.transforms.has_normals` decides)."""
    return d.x[:, :3] if has_normals(d) else None


class ModelNet(PointDataset):
    r"""ModelNet10 / ModelNet40 shape classification, from the files users have.

    Formats (``format="auto"`` detects them from the root):

    ``"off"``
        The original meshes ``<root>/<class>/<split>/<class>_NNNN.off`` (merged
        ``OFF3514 3546 0`` headers and polygons handled). Each mesh is sampled
        once, area-weighted, to ``num_points`` points with face normals, seeded by
        ``seed`` and the shape name; the samples are cached as ``.npy`` under
        ``<root>/processed/off_n<num_points>_s<seed>/`` or, when the root is
        read-only, under ``$POINTSAM_CACHE`` (``~/.cache/pointsam``) keyed by the
        root path and these options.
    ``"points"``
        One point file per shape in the same layout (``.pcd``, ``.ply``, ``.xyz``,
        ``.npy``), for example the 1024-point PCD conversion
        ``ModelNet10/pcd/<class>/<split>/<class>_NNNN.pcd``.
    ``"normal_resampled"``
        PointNet++'s ``modelnet40_normal_resampled``: ``<class>/<shape>.txt`` with
        ``x,y,z,nx,ny,nz`` rows, ``modelnet{10,40}_shape_names.txt`` and the split
        lists ``modelnet{10,40}_{train,test}.txt`` (or ``file_list``). The files
        are y up; points and normals are turned z up like the other formats,
        :math:`(x, y, z) \mapsto (x, -z, y)` (+90 deg about x, a proper
        rotation: :func:`~pointsam.data.io.read_normal_resampled`).
    ``"hdf5"``
        ``modelnet40_ply_hdf5_2048``: ``{train,test}_files.txt`` naming
        ``ply_data_*.h5`` (the ``data/modelnet40_ply_hdf5_2048/`` prefix is
        stripped), each with ``data`` [S, 2048, 3], ``label`` [S, 1] and optional
        ``normal`` [S, 2048, 3]; ``shape_names.txt`` gives the class names.

    For ``"off"`` and ``"points"`` the root may be the folder holding the class
    folders, or one above it (``ModelNet10/``, ``ModelNet10/pcd/`` are searched).

    ``"off"``, ``"points"`` and ``"normal_resampled"`` come in the canonical
    frame of the OFF meshes, z up. ``"hdf5"`` is returned as stored (no sample
    here to check its frame; PointNet's own augmentation turns it about y,
    which suggests y up). Each sample: ``pos`` [N, 3] float32 (raw units; add
    :class:`~pointsam.data.transforms.NormalizeScale`), ``x`` [N, 3] unit normals
    when the format has them and ``use_normals``, ``y`` [1] class id in the
    official class order (:attr:`classes`).

    Stats:
        ============  ========  =======  =======  ==========
        Name          #classes  #train   #test    #points
        ============  ========  =======  =======  ==========
        ModelNet10    10        3,991    908      mesh / 1024
        ModelNet40    40        9,843    2,468    mesh / 10k
        ============  ========  =======  =======  ==========

    Args:
        root: Dataset folder (default ``$POINTSAM_DATA/ModelNet<name>``).
        name: ``"10"`` or ``"40"``.
        split: ``"train"`` or ``"test"``.
        format: One of ``"auto"``, ``"off"``, ``"points"``, ``"normal_resampled"``,
            ``"hdf5"``.
        num_points: Points sampled per mesh (``"off"``), or the first
            ``num_points`` rows (``"normal_resampled"``, as PointNet++); ``None``
            keeps all rows.
        use_normals: Put normals in ``x`` where the format has them.
        seed: Seed of the OFF surface sampling.
        file_list: Shape ids (``airplane_0001``) or a text file of them, used
            instead of the split list (``"normal_resampled"``; for ``"off"`` and
            ``"points"`` it filters the shapes).
        transform: Applied to each sample on access.
        force_reload: Re-sample cached OFF meshes.
        cache_dir: Cache folder overriding the default.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> (root / "chair" / "train").mkdir(parents=True)
        >>> f = root / "chair/train/chair_0001.xyz"
        >>> _ = f.write_text("0 0 0\n1 0 0\n0 1 0\n")
        >>> ds = ModelNet(root, "10", "train")
        >>> len(ds), ds[0].y.item(), ds.classes[2]
        (1, 2, 'chair')
    """

    item_name = "shapes"

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        name: str = "10",
        split: str = "train",
        *,
        format: str = "auto",
        num_points: int | None = 1024,
        use_normals: bool = True,
        seed: int = 0,
        file_list: str | os.PathLike[str] | Sequence[str] | None = None,
        transform: Callable[[Data], Data] | None = None,
        force_reload: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        name = str(name)
        if name not in ("10", "40"):
            raise ValueError(f"name must be '10' or '40', got {name!r}")
        if split not in ("train", "test"):
            raise ValueError(f"split must be one of ['train', 'test'], got {split!r}")
        if format not in FORMATS:
            raise ValueError(f"format must be one of {list(FORMATS)}, got {format!r}")
        self.root = data_root(root, f"ModelNet{name}")
        if not self.root.is_dir():
            raise missing(f"ModelNet{name} root not found", self.root)
        self.name, self.split, self.num_points = name, split, num_points
        self.use_normals, self.seed, self.transform = use_normals, seed, transform
        self.force_reload, self.cache_dir = force_reload, cache_dir
        self.classes: tuple[str, ...] = (
            MODELNET10_CLASSES if name == "10" else MODELNET40_CLASSES
        )
        self._wanted = self._read_file_list(file_list)
        self.format = self._detect() if format == "auto" else format
        self._h5: dict[str, np.ndarray] | None = None
        self.files: list[Path] = []
        self.labels: list[int] = []
        getattr(self, f"_index_{self.format}")()
        if not len(self):
            raise missing(
                f"ModelNet{name} ({self.format}) has no {split} shapes",
                self.data_dir,
                "the root exists but holds no shapes",
            )

    # ------------------------------------------------------------------ index
    @staticmethod
    def _read_file_list(
        file_list: str | os.PathLike[str] | Sequence[str] | None,
    ) -> list[str] | None:
        if file_list is None:
            return None
        if isinstance(file_list, (str, os.PathLike)):
            p = Path(file_list)
            if not p.is_file():
                raise FileNotFoundError(f"file_list {p} not found")
            return [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        return [Path(str(s)).stem for s in file_list]

    def _class_dir_root(self) -> Path | None:
        for cand in (
            self.root,
            self.root / f"ModelNet{self.name}",
            self.root / f"ModelNet{self.name}" / "pcd",
            self.root / "pcd",
        ):
            if cand.is_dir() and any(
                (cand / c / s).is_dir() for c in self.classes for s in ("train", "test")
            ):
                return cand
        return None

    def _detect(self) -> str:
        r = self.root
        if sorted(r.glob("*_files.txt")) or sorted(r.glob("*.h5")):
            return "hdf5"
        if (
            (r / f"modelnet{self.name}_shape_names.txt").is_file()
            or (r / "modelnet40_shape_names.txt").is_file()
            or (r / "filelist.txt").is_file()
        ):
            return "normal_resampled"
        cdir = self._class_dir_root()
        if cdir is None:
            raise missing(
                f"no ModelNet{self.name} layout found under {r}",
                r / "<class>" / self.split,
                "expected <class>/<split>/<class>_NNNN.<off|pcd|ply|xyz|npy>,"
                " modelnet40_normal_resampled text files or the HDF5 files",
            )
        for c in self.classes:
            for f in sorted((cdir / c / self.split).glob("*")):
                if f.suffix.lower() == ".off":
                    return "off"
                if f.suffix.lower() in _POINT_SUFFIXES:
                    return "points"
        return "points"

    @property
    def data_dir(self) -> Path:
        """The folder the shapes were indexed from."""
        return getattr(self, "_data_dir", self.root)

    def _index_files(self, suffixes: tuple[str, ...]) -> None:
        cdir = self._class_dir_root()
        if cdir is None:
            raise missing(
                f"ModelNet{self.name} class folders not found",
                self.root / "<class>" / self.split,
            )
        self._data_dir = cdir
        wanted = set(self._wanted) if self._wanted is not None else None
        for label, c in enumerate(self.classes):
            d = cdir / c / self.split
            if not d.is_dir():
                continue
            for f in sorted(d.iterdir()):
                if f.suffix.lower() in suffixes and (
                    wanted is None or f.stem in wanted
                ):
                    self.files.append(f)
                    self.labels.append(label)

    def _index_off(self) -> None:
        self._index_files((".off",))
        key = f"off_n{self.num_points}_s{self.seed}"
        self._cache = cache_dir_for(self.data_dir, key, self.cache_dir)

    def _index_points(self) -> None:
        self._index_files(_POINT_SUFFIXES)

    def _index_normal_resampled(self) -> None:
        r = self.root
        self._data_dir = r
        names_file = r / f"modelnet{self.name}_shape_names.txt"
        if names_file.is_file():
            self.classes = tuple(
                ln.strip() for ln in names_file.read_text().splitlines() if ln.strip()
            )
        if self._wanted is None:
            split_file = r / f"modelnet{self.name}_{self.split}.txt"
            if not split_file.is_file():
                raise missing(
                    f"ModelNet{self.name} split list not found",
                    split_file,
                    "the official split lists are not bundled with every copy; give "
                    "file_list= (shape ids such as airplane_0001, one per line)",
                )
            self._wanted = self._read_file_list(split_file)
        assert self._wanted is not None
        index = {c: i for i, c in enumerate(self.classes)}
        for sid in self._wanted:
            c = _shape_class(sid)
            if c not in index:
                raise ValueError(
                    f"shape {sid!r}: class {c!r} is not a ModelNet{self.name} class"
                )
            f = r / c / f"{sid}.txt"
            if not f.is_file():
                raise missing(f"shape {sid} listed but missing", f)
            self.files.append(f)
            self.labels.append(index[c])

    def _index_hdf5(self) -> None:
        import h5py

        r = self.root
        self._data_dir = r
        names = r / "shape_names.txt"
        if names.is_file():
            self.classes = tuple(
                ln.strip() for ln in names.read_text().splitlines() if ln.strip()
            )
        lst = r / f"{self.split}_files.txt"
        if lst.is_file():
            h5s = [
                r / Path(ln.strip()).name
                for ln in lst.read_text().splitlines()
                if ln.strip()
            ]
        else:
            h5s = sorted(r.glob(f"*{self.split}*.h5"))
        if not h5s:
            raise missing("ModelNet HDF5 split files not found", lst)
        pos, lab, nrm = [], [], []
        for f in h5s:
            if not f.is_file():
                raise missing(f"HDF5 file listed in {lst.name} is missing", f)
            try:
                with h5py.File(f, "r") as h:
                    pos.append(np.asarray(h["data"], dtype=np.float32))
                    lab.append(np.asarray(h["label"]).reshape(-1).astype(np.int64))
                    if "normal" in h:
                        nrm.append(np.asarray(h["normal"], dtype=np.float32))
            except KeyError as err:
                raise CloudFormatError(f"{f}: HDF5 lacks dataset {err}") from None
            except OSError as err:
                raise CloudFormatError(
                    f"{f}: not a readable HDF5 file ({err})"
                ) from err
            if len(lab[-1]) != len(pos[-1]):
                raise CloudFormatError(
                    f"{f}: {len(pos[-1])} shapes but {len(lab[-1])} labels"
                )
        self._h5 = {"pos": np.concatenate(pos), "label": np.concatenate(lab)}
        if nrm and len(nrm) == len(pos):
            self._h5["normal"] = np.concatenate(nrm)
        self.labels = self._h5["label"].tolist()
        self.files = [h5s[0]] * len(self.labels)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.labels)

    def _sample_off(self, f: Path) -> np.ndarray:
        rel = f.relative_to(self.data_dir)
        cached = self._cache / rel.with_suffix(".npy")
        if cached.is_file() and not self.force_reload:
            return np.load(cached)
        verts, faces = read_off(f)
        if len(faces) == 0:
            raise CloudFormatError(f"{f}: mesh has no faces")
        h = np.frombuffer(f.stem.encode(), dtype=np.uint8).astype(np.uint64)
        rng = np.random.default_rng([self.seed, *h.tolist()])
        n = self.num_points or 1024
        try:
            pts, nrm = sample_surface(verts, faces, n, rng)
        except CloudFormatError as err:
            raise CloudFormatError(f"{f}: {err}") from None
        arr = np.concatenate([pts, nrm], 1).astype(np.float32)  # [n, 6]
        save_npy_atomic(cached, arr)
        return arr

    def get(self, idx: int) -> Data:
        """Sample ``idx`` before ``transform``."""
        f, label = self.files[idx], self.labels[idx]
        if self.format == "hdf5":
            assert self._h5 is not None
            nrm = self._h5["normal"][idx] if "normal" in self._h5 else None
            return make_data(
                self._h5["pos"][idx],
                source=f"{f}[{idx}]",
                x=nrm if self.use_normals else None,
                y=label,
            )
        if self.format == "off":
            arr = self._sample_off(f)
            return make_data(
                arr[:, :3],
                source=f,
                x=arr[:, 3:] if self.use_normals else None,
                y=label,
            )
        if self.format == "normal_resampled":
            pos, nrm = read_normal_resampled(f)  # z up, [N, 3] each
            if self.num_points is not None:
                pos, nrm = pos[: self.num_points], nrm[: self.num_points]
            return make_data(
                pos, source=f, x=nrm if self.use_normals else None, y=label
            )
        d = read_cloud(f)
        out = make_data(d.pos.numpy(), source=f, y=label)
        if self.use_normals:
            out.x = _normals_of(d)
        return out

    @property
    def num_classes(self) -> int:
        """Number of classes (10 or 40)."""
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"ModelNet{self.name}({len(self)}, split={self.split!r}, "
            f"format={self.format!r})"
        )
