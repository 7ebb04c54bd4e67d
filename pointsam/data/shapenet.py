r"""ShapeNetPart (``shapenetcore_partanno_segmentation_benchmark_v0_normal``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data

from pointsam.ops.parts import SEG_CLASSES  # the one table (models use it too)

from ._common import CloudFormatError, data_root, make_data, missing
from .base import PointDataset
from .io import read_xyz

__all__ = ["ShapeNetPart", "SEG_CLASSES"]

SPLITS = ("train", "val", "test", "trainval")


class ShapeNetPart(PointDataset):
    r"""ShapeNet part segmentation: 16 categories, 50 parts, points with normals.

    Layout under ``root``::

        synsetoffset2category.txt          # "Airplane\t02691156", 16 lines
        train_test_split/shuffled_{train,val,test}_file_list.json
        <synset>/<shape id>.txt            # rows "x y z nx ny nz label"

    Each sample: ``pos`` [N, 3], ``x`` [N, 3] normals (``use_normals``), ``y`` [N]
    global part ids (0..49), ``category`` [1] index into :attr:`categories`
    (sorted names, as :data:`SEG_CLASSES`). A label outside its category's parts
    raises :class:`CloudFormatError` naming the file.

    Stats:
        ===========  ======  ======  =====  ==========  =======
        #categories  #parts  #train  #val   #test       #points
        ===========  ======  ======  =====  ==========  =======
        16           50      12,137  1,870  2,874       ~2,500
        ===========  ======  ======  =====  ==========  =======

    Args:
        root: Dataset folder (default
            ``$POINTSAM_DATA/shapenetcore_partanno_segmentation_benchmark_v0_normal``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"trainval"``.
        categories: Category names to keep (default: all).
        file_list: Shapes to use instead of the split JSONs: ``"<synset>/<id>"``
            strings (or paths ending so), or a text/JSON file of them.
        use_normals: Put normals in ``x``.
        transform: Applied to each sample on access.
    """

    item_name = "shapes"

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "trainval",
        *,
        categories: Sequence[str] | None = None,
        file_list: str | os.PathLike[str] | Sequence[str] | None = None,
        use_normals: bool = True,
        transform: Callable[[Data], Data] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        self.root = data_root(
            root, "shapenetcore_partanno_segmentation_benchmark_v0_normal"
        )
        cat_file = self.root / "synsetoffset2category.txt"
        if not cat_file.is_file():
            raise missing("ShapeNetPart category file not found", cat_file)
        self.synset_to_cat: dict[str, str] = {}
        for ln in cat_file.read_text().splitlines():
            if ln.strip():
                name, synset = ln.split()
                self.synset_to_cat[synset] = name
        self.categories: tuple[str, ...] = tuple(sorted(SEG_CLASSES))
        wanted = set(categories) if categories is not None else set(self.categories)
        unknown = wanted - set(self.categories)
        if unknown:
            raise ValueError(
                f"unknown categories {sorted(unknown)}; valid: {list(self.categories)}"
            )
        self.split, self.use_normals, self.transform = split, use_normals, transform
        entries = self._entries(file_list)
        self.files: list[Path] = []
        self.category_ids: list[int] = []
        for e in entries:
            synset, sid = e.split("/")[-2:]
            cat = self.synset_to_cat.get(synset)
            if cat is None:
                raise ValueError(f"{e}: synset {synset} is not in {cat_file}")
            if cat not in wanted:
                continue
            f = self.root / synset / f"{Path(sid).stem}.txt"
            if not f.is_file():
                raise missing(f"ShapeNetPart shape {e} listed but missing", f)
            self.files.append(f)
            self.category_ids.append(self.categories.index(cat))

    def _entries(
        self, file_list: str | os.PathLike[str] | Sequence[str] | None
    ) -> list[str]:
        if file_list is not None:
            if isinstance(file_list, (str, os.PathLike)):
                p = Path(file_list)
                if not p.is_file():
                    raise FileNotFoundError(f"file_list {p} not found")
                text = p.read_text()
                return (
                    json.loads(text)
                    if p.suffix == ".json"
                    else [ln.strip() for ln in text.splitlines() if ln.strip()]
                )
            return [str(s).replace("\\", "/").removesuffix(".txt") for s in file_list]
        splits = ("train", "val") if self.split == "trainval" else (self.split,)
        out: list[str] = []
        for s in splits:
            jf = self.root / "train_test_split" / f"shuffled_{s}_file_list.json"
            if not jf.is_file():
                raise missing(
                    "ShapeNetPart split JSON not found",
                    jf,
                    "copies without the official split lists need file_list= "
                    "('<synset>/<shape id>' entries)",
                )
            out += json.loads(jf.read_text())
        return out

    def __len__(self) -> int:
        return len(self.files)

    def get(self, idx: int) -> Data:
        """Sample ``idx`` before ``transform``."""
        f, cat = self.files[idx], self.category_ids[idx]
        arr = read_xyz(f)
        if arr.shape[1] != 7:
            raise CloudFormatError(
                f"{f}: expected 7 columns x y z nx ny nz label, found {arr.shape[1]}"
            )
        lab = arr[:, 6]
        if not np.all(lab == np.round(lab)):
            raise CloudFormatError(f"{f}: non-integer part labels")
        lab = lab.astype(np.int64)
        parts = SEG_CLASSES[self.categories[cat]]
        bad = ~np.isin(lab, parts)
        if bad.any():
            raise CloudFormatError(
                f"{f}: labels {sorted(set(lab[bad].tolist()))} are not parts of "
                f"{self.categories[cat]} {parts}"
            )
        return make_data(
            arr[:, :3],
            source=f,
            x=arr[:, 3:6] if self.use_normals else None,
            y=lab,
            category=torch.tensor([cat], dtype=torch.long),
        )

    @property
    def num_classes(self) -> int:
        """Number of global part ids (50)."""
        return 50

    num_parts = num_classes

    @property
    def num_categories(self) -> int:
        """Number of categories (16)."""
        return len(self.categories)

    @property
    def category_parts(self) -> list[list[int]]:
        """Part ids of each category, in category order."""
        return [list(SEG_CLASSES[c]) for c in self.categories]

    splits = SPLITS
    seg_classes = SEG_CLASSES

    def __repr__(self) -> str:
        return f"ShapeNetPart({len(self)}, split={self.split!r})"
