"""Objects assembled from labelled parts (part segmentation, 5 categories)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch_geometric.data import Data

from .._common import make_data
from ..base import PointDataset
from ..io import sample_surface
from ._meshes import Mesh, check_common, merge, place, pose, random_rotation, unit

__all__ = ["SyntheticParts", "PART_CLASSES"]

#: Categories of :class:`SyntheticParts` and their global part ids (13 parts).
PART_CLASSES: dict[str, dict[str, int]] = {
    "Airplane": {"fuselage": 0, "wing": 1, "tail": 2},
    "Chair": {"seat": 3, "back": 4, "leg": 5},
    "Lamp": {"base": 6, "stem": 7, "shade": 8},
    "Mug": {"body": 9, "handle": 10},
    "Table": {"top": 11, "leg": 12},
}


def _four_legs(box: Mesh, leg: float, w: float, d: float, h: float) -> list[Mesh]:
    """Four square legs of side ``leg`` and height ``h`` under a w x d top."""
    return [place(box, (leg, leg, h), (sx * (w / 2 - leg), sy * (d / 2 - leg), h / 2))
            for sx in (-1, 1) for sy in (-1, 1)]


def _part_meshes(cat: str, rng: np.random.Generator) -> list[tuple[Mesh, int]]:
    u = rng.uniform
    box, cyl = unit("box"), unit("cylinder")
    ids = PART_CLASSES[cat]
    out: list[tuple[Mesh, int]] = []
    if cat == "Table":
        w, d, h, t = u(1.2, 2.0), u(0.7, 1.2), u(0.6, 0.9), u(0.04, 0.1)
        out.append((place(box, (w, d, t), (0, 0, h)), ids["top"]))
        leg = u(0.04, 0.08)
        out += [(m, ids["leg"]) for m in _four_legs(box, leg, w, d, h)]
    elif cat == "Chair":
        w, h, t = u(0.4, 0.6), u(0.4, 0.5), u(0.04, 0.08)
        out.append((place(box, (w, w, t), (0, 0, h)), ids["seat"]))
        bh = u(0.4, 0.7)
        out.append((place(box, (w, t, bh), (0, -w / 2, h + bh / 2)), ids["back"]))
        leg = u(0.03, 0.05)
        out += [(m, ids["leg"]) for m in _four_legs(box, leg, w, w, h)]
    elif cat == "Lamp":
        rb, hb = u(0.2, 0.35), u(0.03, 0.08)
        out.append((place(cyl, (rb, rb, hb), (0, 0, hb / 2)), ids["base"]))
        hs = u(0.6, 1.2)
        out.append((place(cyl, (0.025, 0.025, hs), (0, 0, hb + hs / 2)), ids["stem"]))
        rs, hh = u(0.2, 0.4), u(0.2, 0.4)
        out.append(
            (
                place(unit("cone"), (rs, rs, hh), (0, 0, hb + hs - hh / 3)),
                ids["shade"],
            )
        )
    elif cat == "Mug":
        r, h = u(0.3, 0.45), u(0.6, 1.0)
        out.append((place(cyl, (r, r, h), (0, 0, h / 2)), ids["body"]))
        hr = u(0.18, 0.28) * h
        v, f = unit("torus")
        v = v[:, [0, 2, 1]] * hr / 1.0  # torus in the x-z plane
        f = f[:, ::-1].copy()  # the axis swap flips orientation
        out.append(((v + np.array([r, 0, h / 2]), f), ids["handle"]))
    elif cat == "Airplane":
        L, r = u(2.0, 3.0), u(0.12, 0.2)
        v, f = place(cyl, (r, r, L))
        out.append(((v[:, [2, 1, 0]], f[:, ::-1].copy()), ids["fuselage"]))
        span, chord = u(1.8, 3.0), u(0.3, 0.5)
        out.append(
            (place(box, (chord, span, 0.04), (u(-0.2, 0.2), 0, 0)), ids["wing"])
        )
        th = u(0.3, 0.5)
        out.append(
            (place(box, (0.3, 0.04, th), (-L / 2 + 0.15, 0, r + th / 2)), ids["tail"])
        )
        out.append(
            (place(box, (0.25, span / 3, 0.03), (-L / 2 + 0.15, 0, r)), ids["tail"])
        )
    return out


class SyntheticParts(PointDataset):
    r"""Objects assembled from labelled parts (part segmentation, like ShapeNetPart).

    Five categories (:data:`PART_CLASSES`) with 13 global part ids: Airplane
    (fuselage, wing, tail), Chair (seat, back, leg), Lamp (base, stem, shade), Mug
    (body, handle), Table (top, leg). Proportions are random per sample; points
    are sampled area-weighted over all parts, then centred and scaled into the
    unit sphere, rotated (``rotation``) and jittered by ``noise``.

    Each sample: ``pos`` [num_points, 3], ``x`` [num_points, 3] normals, ``y``
    [num_points] global part ids, ``category`` [1]. :attr:`seg_classes` maps each
    category to its part ids, as ShapeNetPart's.

    Example:
        >>> ds = SyntheticParts(num_samples=10, num_points=256)
        >>> d = ds[3]
        >>> ds.categories[d.category.item()], sorted(set(d.y.tolist()))
        ('Mug', [9, 10])
    """

    categories = tuple(PART_CLASSES)
    splits = ("train", "val", "test")

    @property
    def category_parts(self) -> list[list[int]]:
        """Part ids of each category, in category order."""
        return [sorted(PART_CLASSES[c].values()) for c in self.categories]
    seg_classes = {c: sorted(p.values()) for c, p in PART_CLASSES.items()}

    def __init__(
        self,
        num_samples: int = 1000,
        num_points: int = 2048,
        split: str = "train",
        *,
        seed: int = 0,
        rotation: str = "none",
        noise: float = 0.002,
        transform: Callable[[Data], Data] | None = None,
    ) -> None:
        self._split = check_common(split, num_samples, num_points, rotation)
        self.num_samples, self.num_points, self.split = num_samples, num_points, split
        self.seed, self.rotation, self.noise = seed, rotation, noise
        self.transform = transform

    def __len__(self) -> int:
        return self.num_samples

    @property
    def num_classes(self) -> int:
        """Number of global part ids (13)."""
        return sum(len(p) for p in PART_CLASSES.values())

    num_parts = num_classes

    @property
    def num_categories(self) -> int:
        """Number of categories (5)."""
        return len(self.categories)

    def get(self, idx: int) -> Data:
        """Sample ``idx`` before ``transform``."""
        rng = np.random.default_rng([self.seed, self._split, idx])
        cat = idx % len(self.categories)
        parts = _part_meshes(self.categories[cat], rng)
        v, f, part = merge([m for m, _ in parts])
        face_label = np.array([pid for _, pid in parts])[part]  # [F]
        pts, nrm, lab = sample_surface(v, f, self.num_points, rng, face_label)
        pts = pts - pts.mean(0)
        pts = pts / np.linalg.norm(pts, axis=1).max()
        pts, nrm = pose(pts, nrm, random_rotation(rng, self.rotation))
        pts = pts + rng.normal(scale=self.noise, size=pts.shape)
        return make_data(pts, x=nrm, y=lab, category=torch.tensor([cat]))

    def __repr__(self) -> str:
        return f"SyntheticParts({len(self)}, split={self.split!r})"
