r"""Synthetic datasets that need no files: shapes, part-labelled objects, LiDAR scenes.

All three are deterministic functions of ``(seed, split, index)``: sample ``i`` is
generated on access from ``numpy.random.default_rng([seed, split, i])``, so any
DataLoader worker, order or process gives the same sample.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from torch_geometric.data import Data

from ._common import make_data
from .base import PointDataset
from .io import sample_surface

__all__ = [
    "SyntheticShapes",
    "SyntheticParts",
    "SyntheticLidar",
    "SHAPE_CLASSES",
    "PART_CLASSES",
    "LIDAR_CLASSES",
]

Mesh = tuple[np.ndarray, np.ndarray]  # vertices [V, 3] float64, faces [F, 3] int64
_SPLITS = {"train": 0, "val": 1, "test": 2}


def _check_common(split: str, num_samples: int, num_points: int | None) -> int:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}, got {split!r}")
    for name, v in (("num_samples", num_samples), ("num_points", num_points)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    return _SPLITS[split]


# ------------------------------------------------------------------ primitives
def _legacy(mesh: object) -> Mesh:
    return (
        np.asarray(mesh.vertices, dtype=np.float64).copy(),  # type: ignore[attr-defined]
        np.asarray(mesh.triangles, dtype=np.int64).copy(),
    )  # type: ignore[attr-defined]


@functools.cache
def _unit(name: str) -> Mesh:
    """Unit primitives, centred at the origin (Open3D's, outward CCW winding)."""
    import open3d as o3d

    g = o3d.geometry.TriangleMesh
    if name == "box":
        v, f = _legacy(g.create_box(1.0, 1.0, 1.0))
        return v - 0.5, f
    if name == "sphere":
        return _legacy(g.create_sphere(1.0, resolution=12))
    if name == "cylinder":
        return _legacy(g.create_cylinder(1.0, 1.0, resolution=20, split=1))
    if name == "cone":  # base at z=0, apex at z=1
        return _legacy(g.create_cone(1.0, 1.0, resolution=20, split=1))
    if name == "torus":
        return _legacy(
            g.create_torus(1.0, 0.3, radial_resolution=24, tubular_resolution=12)
        )
    if name == "tetrahedron":
        return _legacy(g.create_tetrahedron(1.0))
    if name == "octahedron":
        return _legacy(g.create_octahedron(1.0))
    if name == "icosahedron":
        return _legacy(g.create_icosahedron(1.0))
    if name == "arrow":
        v, f = _legacy(g.create_arrow(0.15, 0.3, 1.2, 0.6, resolution=16))
        return v - np.array([0, 0, 0.9]), f
    if name == "mobius":
        return _legacy(
            g.create_mobius(
                length_split=60,
                width_split=4,
                twists=1,
                radius=1.0,
                flatness=1.0,
                width=0.6,
            )
        )
    if name == "pyramid":
        v = np.array(
            [[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0], [0, 0, 1.4]],
            dtype=np.float64,
        )
        f = np.array([[0, 2, 1], [0, 3, 2], [0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
        return v - np.array([0, 0, 0.5]), f
    raise KeyError(name)


def _place(
    mesh: Mesh,
    scale: np.ndarray | float = 1.0,
    offset: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Mesh:
    v, f = mesh
    return v * np.asarray(scale, dtype=np.float64) + np.asarray(offset), f


def _merge(meshes: list[Mesh]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate meshes; also the part index of every face, [F]."""
    vs, fs, ids, n = [], [], [], 0
    for i, (v, f) in enumerate(meshes):
        vs.append(v)
        fs.append(f + n)
        ids.append(np.full(len(f), i))
        n += len(v)
    return np.concatenate(vs), np.concatenate(fs), np.concatenate(ids)


def _random_rotation(rng: np.random.Generator, mode: str) -> np.ndarray:
    if mode == "none":
        return np.eye(3)
    if mode == "z":
        a = rng.uniform(0, 2 * math.pi)
        c, s = math.cos(a), math.sin(a)
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _pose(
    pts: np.ndarray, nrm: np.ndarray, lin: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the linear map ``lin`` [3, 3] to points and (inverse-transpose) normals."""
    p = pts @ lin.T  # [N, 3]
    n = nrm @ np.linalg.inv(lin)  # [N, 3] = (lin^{-T} n^T)^T
    return p, n / np.linalg.norm(n, axis=1, keepdims=True).clip(min=1e-12)


# ------------------------------------------------------------------ shapes
#: Classes of :class:`SyntheticShapes`, in label order.
SHAPE_CLASSES = (
    "sphere",
    "cube",
    "cylinder",
    "cone",
    "torus",
    "tetrahedron",
    "octahedron",
    "pyramid",
    "arrow",
    "mobius",
    "plate",
    "hourglass",
)


@functools.cache
def _shape_mesh(name: str) -> Mesh:
    if name == "cube":
        return _unit("box")
    if name == "cylinder":
        return _place(_unit("cylinder"), (0.5, 0.5, 1.6))
    if name == "cone":
        return _place(_unit("cone"), (0.7, 0.7, 1.5), (0, 0, -0.75))
    if name == "plate":
        return _place(_unit("box"), (2.0, 2.0, 0.15))
    if name == "hourglass":
        top = _place(_unit("cone"), (0.6, 0.6, -0.8), (0, 0, 0.8))
        top = (top[0], top[1][:, ::-1].copy())  # mirrored cone: flip the winding
        v, f, _ = _merge([_place(_unit("cone"), (0.6, 0.6, 0.8), (0, 0, -0.8)), top])
        return v, f
    return _unit(name)


class SyntheticShapes(PointDataset):
    r"""Parametric solids sampled on their surfaces, with normals (classification).

    The 12 classes (:data:`SHAPE_CLASSES`): sphere, cube, cylinder, cone, torus,
    tetrahedron, octahedron, pyramid, arrow, mobius, plate, hourglass. Sample
    ``i`` has class ``i % 12`` (balanced) and a random pose: uniform rotation
    (``rotation``), size :math:`s \sim U(0.5, 2)` times an anisotropic factor in
    :math:`U(1 - a, 1 + a)^3`, a shift in :math:`U(-1, 1)^3` and Gaussian noise of
    std ``noise * s`` along each coordinate.

    Each sample: ``pos`` [num_points, 3], ``x`` [num_points, 3] unit normals,
    ``y`` [1].

    Args:
        num_samples: Samples in the split.
        num_points: Points per sample.
        split: ``"train"``, ``"val"`` or ``"test"`` (different samples).
        seed: Dataset seed.
        rotation: ``"so3"``, ``"z"`` or ``"none"``.
        anisotropy: a in the size factor above.
        noise: Relative noise std.
        transform: Applied to each sample on access.

    Example:
        >>> ds = SyntheticShapes(num_samples=24, num_points=128)
        >>> d = ds[5]
        >>> d.pos.shape, d.x.shape, ds.classes[d.y.item()]
        (torch.Size([128, 3]), torch.Size([128, 3]), 'tetrahedron')
    """

    classes = SHAPE_CLASSES

    def __init__(
        self,
        num_samples: int = 1200,
        num_points: int = 1024,
        split: str = "train",
        *,
        seed: int = 0,
        rotation: str = "so3",
        anisotropy: float = 0.2,
        noise: float = 0.005,
        transform: Callable[[Data], Data] | None = None,
    ) -> None:
        self._split = _check_common(split, num_samples, num_points)
        if rotation not in ("so3", "z", "none"):
            raise ValueError(f"rotation must be 'so3', 'z' or 'none', got {rotation!r}")
        self.num_samples, self.num_points, self.split = num_samples, num_points, split
        self.seed, self.rotation, self.anisotropy = seed, rotation, anisotropy
        self.noise, self.transform = noise, transform

    def __len__(self) -> int:
        return self.num_samples

    @property
    def num_classes(self) -> int:
        """Number of classes (12)."""
        return len(self.classes)

    def get(self, idx: int) -> Data:
        """Sample ``idx`` before ``transform``."""
        rng = np.random.default_rng([self.seed, self._split, idx])
        label = idx % len(self.classes)
        v, f = _shape_mesh(self.classes[label])
        pts, nrm = sample_surface(v, f, self.num_points, rng)
        size = rng.uniform(0.5, 2.0)
        aniso = rng.uniform(1 - self.anisotropy, 1 + self.anisotropy, size=3)
        lin = _random_rotation(rng, self.rotation) @ np.diag(size * aniso)
        pts, nrm = _pose(pts, nrm, lin)
        pts = (
            pts
            + rng.uniform(-1, 1, size=3)
            + rng.normal(scale=self.noise * size, size=pts.shape)
        )
        return make_data(pts, x=nrm, y=label)

    def __repr__(self) -> str:
        return f"SyntheticShapes({len(self)}, split={self.split!r})"


# ------------------------------------------------------------------ parts
#: Categories of :class:`SyntheticParts` and their global part ids (13 parts).
PART_CLASSES: dict[str, dict[str, int]] = {
    "Airplane": {"fuselage": 0, "wing": 1, "tail": 2},
    "Chair": {"seat": 3, "back": 4, "leg": 5},
    "Lamp": {"base": 6, "stem": 7, "shade": 8},
    "Mug": {"body": 9, "handle": 10},
    "Table": {"top": 11, "leg": 12},
}


def _part_meshes(cat: str, rng: np.random.Generator) -> list[tuple[Mesh, int]]:
    u = rng.uniform
    box, cyl = _unit("box"), _unit("cylinder")
    ids = PART_CLASSES[cat]
    out: list[tuple[Mesh, int]] = []
    if cat == "Table":
        w, d, h, t = u(1.2, 2.0), u(0.7, 1.2), u(0.6, 0.9), u(0.04, 0.1)
        out.append((_place(box, (w, d, t), (0, 0, h)), ids["top"]))
        leg = u(0.04, 0.08)
        for sx in (-1, 1):
            for sy in (-1, 1):
                out.append(
                    (
                        _place(
                            box,
                            (leg, leg, h),
                            (sx * (w / 2 - leg), sy * (d / 2 - leg), h / 2),
                        ),
                        ids["leg"],
                    )
                )
    elif cat == "Chair":
        w, h, t = u(0.4, 0.6), u(0.4, 0.5), u(0.04, 0.08)
        out.append((_place(box, (w, w, t), (0, 0, h)), ids["seat"]))
        bh = u(0.4, 0.7)
        out.append((_place(box, (w, t, bh), (0, -w / 2, h + bh / 2)), ids["back"]))
        leg = u(0.03, 0.05)
        for sx in (-1, 1):
            for sy in (-1, 1):
                out.append(
                    (
                        _place(
                            box,
                            (leg, leg, h),
                            (sx * (w / 2 - leg), sy * (w / 2 - leg), h / 2),
                        ),
                        ids["leg"],
                    )
                )
    elif cat == "Lamp":
        rb, hb = u(0.2, 0.35), u(0.03, 0.08)
        out.append((_place(cyl, (rb, rb, hb), (0, 0, hb / 2)), ids["base"]))
        hs = u(0.6, 1.2)
        out.append((_place(cyl, (0.025, 0.025, hs), (0, 0, hb + hs / 2)), ids["stem"]))
        rs, hh = u(0.2, 0.4), u(0.2, 0.4)
        out.append(
            (
                _place(_unit("cone"), (rs, rs, hh), (0, 0, hb + hs - hh / 3)),
                ids["shade"],
            )
        )
    elif cat == "Mug":
        r, h = u(0.3, 0.45), u(0.6, 1.0)
        out.append((_place(cyl, (r, r, h), (0, 0, h / 2)), ids["body"]))
        hr = u(0.18, 0.28) * h
        v, f = _unit("torus")
        v = v[:, [0, 2, 1]] * hr / 1.0  # torus in the x-z plane
        f = f[:, ::-1].copy()  # the axis swap flips orientation
        out.append(((v + np.array([r, 0, h / 2]), f), ids["handle"]))
    elif cat == "Airplane":
        L, r = u(2.0, 3.0), u(0.12, 0.2)
        v, f = _place(cyl, (r, r, L))
        out.append(((v[:, [2, 1, 0]], f[:, ::-1].copy()), ids["fuselage"]))
        span, chord = u(1.8, 3.0), u(0.3, 0.5)
        out.append(
            (_place(box, (chord, span, 0.04), (u(-0.2, 0.2), 0, 0)), ids["wing"])
        )
        th = u(0.3, 0.5)
        out.append(
            (_place(box, (0.3, 0.04, th), (-L / 2 + 0.15, 0, r + th / 2)), ids["tail"])
        )
        out.append(
            (_place(box, (0.25, span / 3, 0.03), (-L / 2 + 0.15, 0, r)), ids["tail"])
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
        self._split = _check_common(split, num_samples, num_points)
        if rotation not in ("so3", "z", "none"):
            raise ValueError(f"rotation must be 'so3', 'z' or 'none', got {rotation!r}")
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
        v, f, part = _merge([m for m, _ in parts])
        face_label = np.array([pid for _, pid in parts])[part]  # [F]
        pts, nrm, lab = sample_surface(v, f, self.num_points, rng, face_label)
        pts = pts - pts.mean(0)
        pts = pts / np.linalg.norm(pts, axis=1).max()
        pts, nrm = _pose(pts, nrm, _random_rotation(rng, self.rotation))
        pts = pts + rng.normal(scale=self.noise, size=pts.shape)
        return make_data(pts, x=nrm, y=lab, category=torch.tensor([cat]))

    def __repr__(self) -> str:
        return f"SyntheticParts({len(self)}, split={self.split!r})"


# ------------------------------------------------------------------ LiDAR
#: Classes of :class:`SyntheticLidar`, in label order.
LIDAR_CLASSES = (
    "ground",
    "road",
    "sidewalk",
    "building",
    "car",
    "pole",
    "vegetation",
    "person",
)
_ALBEDO = np.array([0.25, 0.12, 0.3, 0.45, 0.6, 0.5, 0.35, 0.4])  # per class


def _street_scene(rng: np.random.Generator) -> dict[str, object]:
    """A random street: list of (mesh, class, velocity [3]) in world metres."""
    u = rng.uniform
    box, cyl, sph = _unit("box"), _unit("cylinder"), _unit("sphere")
    objs: list[tuple[Mesh, int, np.ndarray]] = []
    still = np.zeros(3)
    L = 160.0
    road_w, side_w, curb = u(6, 10), u(2, 4), 0.15
    edge = road_w / 2 + side_w
    quad = (
        np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0.0]]),
        np.array([[0, 1, 2], [0, 2, 3]]),
    )
    objs.append((_place(quad, (L, road_w / 2, 1)), 1, still))
    for s in (-1, 1):
        objs.append(
            (
                _place(
                    box,
                    (2 * L, side_w, curb),
                    (0, s * (road_w / 2 + side_w / 2), curb / 2),
                ),
                2,
                still,
            )
        )
        objs.append((_place(quad, (L, 60, 1), (0, s * (edge + 60), 0)), 0, still))
        x = -L / 2
        while x < L / 2:  # buildings along the street, with gaps
            length, depth, height = u(8, 30), u(8, 20), u(5, 25)
            setback = u(1, 8)
            if rng.random() < 0.8:
                objs.append(
                    (
                        _place(
                            box,
                            (length, depth, height),
                            (
                                x + length / 2,
                                s * (edge + setback + depth / 2),
                                height / 2,
                            ),
                        ),
                        3,
                        still,
                    )
                )
            x += length + u(1, 10)
        for _ in range(int(rng.integers(2, 6))):  # poles on the sidewalk
            h = u(4, 8)
            objs.append(
                (
                    _place(
                        cyl, (0.1, 0.1, h), (u(-60, 60), s * (edge - 0.4), curb + h / 2)
                    ),
                    5,
                    still,
                )
            )
        for _ in range(int(rng.integers(2, 7))):  # trees between sidewalk and houses
            px, py = u(-60, 60), s * (edge + u(0.5, 1.0))
            th, cr = u(1.5, 3), u(1.2, 2.5)
            objs.append((_place(cyl, (0.2, 0.2, th), (px, py, th / 2)), 6, still))
            objs.append(
                (
                    _place(sph, (cr, cr, cr * u(0.8, 1.2)), (px, py, th + cr * 0.8)),
                    6,
                    still,
                )
            )
        for _ in range(int(rng.integers(1, 5))):  # people walking on the sidewalk
            px, py = u(-40, 40), s * (road_w / 2 + u(0.5, side_w - 0.5))
            vel = np.array([s * u(0.8, 1.6), 0, 0]) if rng.random() < 0.6 else still
            h = u(1.5, 1.9)
            objs.append(
                (
                    _place(
                        cyl, (0.22, 0.22, h - 0.25), (px, py, curb + (h - 0.25) / 2)
                    ),
                    7,
                    vel,
                )
            )
            objs.append((_place(sph, 0.12, (px, py, curb + h - 0.12)), 7, vel))
        for _ in range(int(rng.integers(2, 7))):  # cars: parked at the kerb or driving
            px = u(-60, 60)
            parked = rng.random() < 0.5
            py = s * (road_w / 2 - 1.2) if parked else s * road_w / 4
            if abs(px) < 5 and abs(py) < 2.5:
                continue  # never on top of the ego vehicle
            vel = still if parked else np.array([-s * u(5, 12), 0, 0])
            cl, cw, ch = u(3.8, 4.8), u(1.7, 1.9), u(0.9, 1.1)
            objs.append((_place(box, (cl, cw, ch), (px, py, 0.25 + ch / 2)), 4, vel))
            objs.append(
                (
                    _place(
                        box, (cl * 0.5, cw * 0.9, 0.5), (px - 0.2, py, 0.25 + ch + 0.25)
                    ),
                    4,
                    vel,
                )
            )
    return {"objects": objs, "road_width": road_w}


class SyntheticLidar(PointDataset):
    r"""Procedural street scenes ray-cast in a spinning-LiDAR pattern (semantic seg.).

    A random street (road, raised sidewalks, terrain, buildings with gaps, parked
    and driving cars, poles, trees, walking people) is built from boxes, cylinders
    and spheres and ray-cast with Open3D's ``RaycastingScene`` from a sensor
    ``sensor_height`` above the road: ``beams`` elevations evenly in
    [``fov_down``, ``fov_up``] degrees (an HDL-64E: -24.8 to 2) times
    ``azimuth_steps`` azimuths, returns beyond ``max_range`` dropped. The default
    64 x 1800 = 115,200 rays give about 100k points.

    Remission (``x`` [N, 1], in [0, 1]) is a per-class albedo times
    :math:`\sqrt{|\cos\theta|}` (incidence angle) times :math:`e^{-r/200}` plus
    noise. ``y`` [N] are class ids of :data:`LIDAR_CLASSES`: 0 ground, 1 road,
    2 sidewalk, 3 building, 4 car, 5 pole, 6 vegetation, 7 person. ``pos`` is in
    the sensor frame (x forward, z up), as KITTI.

    With ``num_scans = T > 1`` the ego vehicle drives forward at ``ego_speed``
    m/s, scans are ``scan_period`` s apart, and moving cars and people move;
    the T scans (newest first) are stacked in the newest scan's frame as in
    :class:`~pointsam.data.SemanticKITTI`: ``frame`` [N] (0 = newest), ``poses``
    [1, T, 4, 4] (scan t -> newest), and ``moving`` [N] bool marks points on
    moving objects.

    Example:
        >>> ds = SyntheticLidar(num_samples=2, beams=16, azimuth_steps=360)
        >>> d = ds[0]
        >>> d.pos.shape[1], d.x.shape[1], int(d.y.max()) < 8
        (3, 1, True)
    """

    classes = LIDAR_CLASSES
    #: No point is unlabeled here; the attribute matches :class:`SemanticKITTI`.
    ignore_index = -1

    def __init__(
        self,
        num_samples: int = 100,
        split: str = "train",
        *,
        seed: int = 0,
        beams: int = 64,
        azimuth_steps: int = 1800,
        fov_up: float = 2.0,
        fov_down: float = -24.8,
        max_range: float = 80.0,
        sensor_height: float = 1.73,
        range_noise: float = 0.01,
        num_scans: int = 1,
        ego_speed: float = 8.0,
        scan_period: float = 0.1,
        transform: Callable[[Data], Data] | None = None,
    ) -> None:
        self._split = _check_common(split, num_samples, None)
        for name, v in (
            ("beams", beams),
            ("azimuth_steps", azimuth_steps),
            ("num_scans", num_scans),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not fov_down < fov_up:
            raise ValueError(f"need fov_down < fov_up, got {fov_down}, {fov_up}")
        self.num_samples, self.split, self.seed = num_samples, split, seed
        self.beams, self.azimuth_steps = beams, azimuth_steps
        self.fov_up, self.fov_down, self.max_range = fov_up, fov_down, max_range
        self.sensor_height, self.range_noise = sensor_height, range_noise
        self.num_scans, self.ego_speed, self.scan_period = (
            num_scans,
            ego_speed,
            scan_period,
        )
        self.transform = transform

    def __len__(self) -> int:
        return self.num_samples

    @property
    def num_classes(self) -> int:
        """Number of classes (8)."""
        return len(self.classes)

    def ray_directions(self) -> np.ndarray:
        """Unit ray directions, beam-major, [beams * azimuth_steps, 3] float32."""
        elev = np.radians(np.linspace(self.fov_down, self.fov_up, self.beams))
        az = np.linspace(0, 2 * np.pi, self.azimuth_steps, endpoint=False)
        e, a = np.meshgrid(elev, az, indexing="ij")  # [beams, az]
        d = np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1)
        return d.reshape(-1, 3).astype(np.float32)

    def _cast(
        self,
        objs: list[tuple[Mesh, int, np.ndarray]],
        time: float,
        origin: np.ndarray,
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, ...]:
        import open3d as o3d

        scene = o3d.t.geometry.RaycastingScene()
        labels, moving = [], []
        for (v, f), cls, vel in objs:
            vv = (v + vel * time).astype(np.float32)
            scene.add_triangles(
                o3d.core.Tensor(vv), o3d.core.Tensor(f.astype(np.uint32))
            )
            labels.append(cls)
            moving.append(bool(np.any(vel != 0)))
        dirs = self.ray_directions()  # [R, 3]
        rays = np.concatenate([np.broadcast_to(origin, dirs.shape), dirs], 1)  # [R, 6]
        ans = scene.cast_rays(o3d.core.Tensor(rays.astype(np.float32)))
        t = ans["t_hit"].numpy()  # [R]
        gid = ans["geometry_ids"].numpy().astype(np.int64)  # [R]
        nrm = ans["primitive_normals"].numpy()  # [R, 3]
        hit = np.isfinite(t) & (t < self.max_range)
        t, gid, nrm, dirs = t[hit], gid[hit], nrm[hit], dirs[hit]
        r = t + rng.normal(scale=self.range_noise, size=t.shape)
        pts = dirs * r[:, None]  # [M, 3] relative to the sensor
        y = np.asarray(labels, dtype=np.int64)[gid]  # [M]
        cos = np.abs((nrm * dirs).sum(1))
        rem = _ALBEDO[y] * np.sqrt(cos) * np.exp(-r / 200.0)
        rem = np.clip(rem + rng.normal(scale=0.02, size=rem.shape), 0, 1)
        return pts, rem, y, np.asarray(moving)[gid]

    def get(self, idx: int) -> Data:
        """Sample ``idx`` before ``transform``."""
        rng = np.random.default_rng([self.seed, self._split, idx])
        objs = _street_scene(rng)["objects"]
        assert isinstance(objs, list)
        h = self.sensor_height
        if self.num_scans == 1:
            pts, rem, y, _ = self._cast(objs, 0.0, np.array([0, 0, h]), rng)
            return make_data(pts, x=rem, y=y)
        parts = []
        mats = []
        for t in range(self.num_scans):  # t = 0 is the newest scan
            time = -t * self.scan_period
            ego = np.array([self.ego_speed * time, 0, h])
            pts, rem, y, mov = self._cast(objs, time, ego, rng)
            rel = np.eye(4)
            rel[:3, 3] = [self.ego_speed * time, 0, 0]  # scan t -> newest frame
            d = make_data(pts + rel[:3, 3], x=rem, y=y)
            d.frame = torch.full((len(pts),), t, dtype=torch.long)
            d.moving = torch.from_numpy(mov)
            parts.append(d)
            mats.append(rel)
        out = Data()
        for key in parts[0].keys():
            out[key] = torch.cat([p[key] for p in parts], 0)
        out.poses = (
            torch.from_numpy(np.stack(mats)).float().unsqueeze(0)
        )  # [1, T, 4, 4]
        return out

    def __repr__(self) -> str:
        return (
            f"SyntheticLidar({len(self)}, split={self.split!r}, "
            f"rays={self.beams}x{self.azimuth_steps})"
        )
