"""Procedural street scenes ray-cast as spinning-LiDAR scans (semantic segmentation)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch_geometric.data import Data

from .._common import concat_frames, make_data
from ..base import PointDataset
from ._meshes import Mesh, check_common, place, unit

__all__ = [
    "SyntheticLidar",
    "LIDAR_CLASSES",
    "MOVING_CLASSES",
    "SYNTHETIC_TO_SEMANTICKITTI",
]

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
#: Extra classes of ``SyntheticLidar(moving_classes=True)``, ids 8 and 9: points
#: on a driving car / a walking person (SemanticKITTI's multi-scan benchmark
#: splits ``moving-car``, ``moving-person``... off the static classes the same
#: way); ``car`` and ``person`` then mean parked / standing ones.
MOVING_CLASSES = ("moving car", "moving person")
#: :data:`LIDAR_CLASSES` id -> SemanticKITTI train id (learning map - 1, 0..18):
#: ground -> terrain (16), road -> road (8), sidewalk -> sidewalk (10),
#: building -> building (12), car -> car (0), pole -> pole (17),
#: vegetation -> vegetation (14; tree trunks too: the scenes do not tell a trunk
#: from its crown, SemanticKITTI's ``trunk`` (15) gets none), person -> person (5).
#: The other 11 SemanticKITTI classes (bicycle, motorcycle, truck, other-vehicle,
#: bicyclist, motorcyclist, parking, other-ground, fence, trunk, traffic-sign)
#: never occur in a synthetic scene.
SYNTHETIC_TO_SEMANTICKITTI = (16, 8, 10, 12, 0, 17, 14, 5)
_ALBEDO = np.array([0.25, 0.12, 0.3, 0.45, 0.6, 0.5, 0.35, 0.4])  # per class


def _street_scene(
    rng: np.random.Generator, stopped_cars: float = 0.0
) -> dict[str, object]:
    """A random street: list of (mesh, class, velocity [3]) in world metres.

    A car in a driving lane stands still with probability ``stopped_cars``
    (drawn only when it is > 0, so the default scenes stay the same).
    """
    u = rng.uniform
    box, cyl, sph = unit("box"), unit("cylinder"), unit("sphere")
    objs: list[tuple[Mesh, int, np.ndarray]] = []
    still = np.zeros(3)
    L = 160.0
    road_w, side_w, curb = u(6, 10), u(2, 4), 0.15
    edge = road_w / 2 + side_w
    quad = (
        np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0.0]]),
        np.array([[0, 1, 2], [0, 2, 3]]),
    )
    objs.append((place(quad, (L, road_w / 2, 1)), 1, still))
    for s in (-1, 1):
        objs.append(
            (
                place(
                    box,
                    (2 * L, side_w, curb),
                    (0, s * (road_w / 2 + side_w / 2), curb / 2),
                ),
                2,
                still,
            )
        )
        objs.append((place(quad, (L, 60, 1), (0, s * (edge + 60), 0)), 0, still))
        x = -L / 2
        while x < L / 2:  # buildings along the street, with gaps
            length, depth, height = u(8, 30), u(8, 20), u(5, 25)
            setback = u(1, 8)
            if rng.random() < 0.8:
                objs.append(
                    (
                        place(
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
                    place(
                        cyl, (0.1, 0.1, h), (u(-60, 60), s * (edge - 0.4), curb + h / 2)
                    ),
                    5,
                    still,
                )
            )
        for _ in range(int(rng.integers(2, 7))):  # trees between sidewalk and houses
            px, py = u(-60, 60), s * (edge + u(0.5, 1.0))
            th, cr = u(1.5, 3), u(1.2, 2.5)
            objs.append((place(cyl, (0.2, 0.2, th), (px, py, th / 2)), 6, still))
            objs.append(
                (
                    place(sph, (cr, cr, cr * u(0.8, 1.2)), (px, py, th + cr * 0.8)),
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
                    place(
                        cyl, (0.22, 0.22, h - 0.25), (px, py, curb + (h - 0.25) / 2)
                    ),
                    7,
                    vel,
                )
            )
            objs.append((place(sph, 0.12, (px, py, curb + h - 0.12)), 7, vel))
        for _ in range(int(rng.integers(2, 7))):  # cars: parked at the kerb or driving
            px = u(-60, 60)
            parked = rng.random() < 0.5
            py = s * (road_w / 2 - 1.2) if parked else s * road_w / 4
            if abs(px) < 5 and abs(py) < 2.5:
                continue  # never on top of the ego vehicle
            vel = still if parked else np.array([-s * u(5, 12), 0, 0])
            if not parked and stopped_cars > 0 and rng.random() < stopped_cars:
                vel = still  # stopped in its lane (traffic, a red light)
            cl, cw, ch = u(3.8, 4.8), u(1.7, 1.9), u(0.9, 1.1)
            objs.append((place(box, (cl, cw, ch), (px, py, 0.25 + ch / 2)), 4, vel))
            objs.append(
                (
                    place(
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

    ``moving_classes=True`` adds the classes of :data:`MOVING_CLASSES`: a point
    of class car (4) or person (7) on a moving object gets 8 (``moving car``)
    or 9 (``moving person``), so ``car`` and ``person`` mean static ones (ten
    classes). About half the cars drive and 60% of the people walk. A single
    scan cannot tell a parked car from a driving one; a model that sees the
    earlier scans can. ``crop_radius`` (metres) keeps only points within that
    horizontal distance of the newest scan's sensor, in every scan.

    Parked cars stand at the kerb and driving ones in the lanes, so a single
    scan can guess "moving" from where a car is. ``stopped_cars`` (a
    probability, default 0) makes that many of the lane cars stand still
    (stopped in traffic), labelled ``car``: a stopped and a driving car in
    the same lane look the same in one scan, and only the earlier scans tell
    them apart.

    Example:
        >>> ds = SyntheticLidar(num_samples=2, beams=16, azimuth_steps=360)
        >>> d = ds[0]
        >>> d.pos.shape[1], d.x.shape[1], int(d.y.max()) < 8
        (3, 1, True)
    """

    classes: tuple[str, ...] = LIDAR_CLASSES
    splits = ("train", "val", "test")
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
        moving_classes: bool = False,
        crop_radius: float | None = None,
        stopped_cars: float = 0.0,
        transform: Callable[[Data], Data] | None = None,
    ) -> None:
        self._split = check_common(split, num_samples, None)
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
        if not isinstance(moving_classes, bool):
            raise ValueError(f"moving_classes must be True or False, got "
                             f"{moving_classes!r}")
        if crop_radius is not None and not crop_radius > 0:
            raise ValueError(f"crop_radius must be > 0 metres or None, got "
                             f"{crop_radius!r}")
        if not 0.0 <= stopped_cars <= 1.0:
            raise ValueError(f"stopped_cars must be in [0, 1], got {stopped_cars!r}")
        self.moving_classes, self.crop_radius = moving_classes, crop_radius
        self.stopped_cars = float(stopped_cars)
        if moving_classes:
            self.classes = LIDAR_CLASSES + MOVING_CLASSES
        self.transform = transform

    def __len__(self) -> int:
        return self.num_samples

    @property
    def num_classes(self) -> int:
        """Number of classes (8; 10 with ``moving_classes``)."""
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
        mov = np.asarray(moving)[gid]  # [M]
        if self.moving_classes:
            y = np.where(mov & (y == 4), 8, np.where(mov & (y == 7), 9, y))
        return pts, rem, y, mov

    def _crop(self, pts: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """Which points (newest frame: ``pts + shift``) are inside ``crop_radius``."""
        if self.crop_radius is None:
            return np.ones(len(pts), dtype=bool)
        xy = pts[:, :2] + shift[:2]
        return (xy**2).sum(1) <= self.crop_radius**2
    def get(self, idx: int) -> Data:
        """Sample ``idx`` before ``transform``."""
        rng = np.random.default_rng([self.seed, self._split, idx])
        objs = _street_scene(rng, self.stopped_cars)["objects"]
        assert isinstance(objs, list)
        h = self.sensor_height
        if self.num_scans == 1:
            pts, rem, y, _ = self._cast(objs, 0.0, np.array([0, 0, h]), rng)
            keep = self._crop(pts, np.zeros(3))
            return make_data(pts[keep], x=rem[keep], y=y[keep])
        parts = []
        mats = []
        for t in range(self.num_scans):  # t = 0 is the newest scan
            time = -t * self.scan_period
            ego = np.array([self.ego_speed * time, 0, h])
            pts, rem, y, mov = self._cast(objs, time, ego, rng)
            rel = np.eye(4)
            rel[:3, 3] = [self.ego_speed * time, 0, 0]  # scan t -> newest frame
            keep = self._crop(pts, rel[:3, 3])
            pts, rem, y, mov = pts[keep], rem[keep], y[keep], mov[keep]
            d = make_data(pts + rel[:3, 3], x=rem, y=y)
            d.frame = torch.full((len(pts),), t, dtype=torch.long)
            d.moving = torch.from_numpy(mov)
            parts.append(d)
            mats.append(rel)
        return concat_frames(parts, mats)

    def __repr__(self) -> str:
        return (
            f"SyntheticLidar({len(self)}, split={self.split!r}, "
            f"rays={self.beams}x{self.azimuth_steps}"
            + (f", num_scans={self.num_scans}" if self.num_scans > 1 else "")
            + (", moving_classes=True" if self.moving_classes else "")
            + ")"
        )
