"""Mesh primitives and poses shared by the synthetic datasets (numpy, Open3D)."""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["Mesh", "check_common", "unit", "place", "merge", "random_rotation",
           "pose"]

Mesh = tuple[np.ndarray, np.ndarray]  # vertices [V, 3] float64, faces [F, 3] int64
_SPLITS = {"train": 0, "val": 1, "test": 2}


def check_common(split: str, num_samples: int, num_points: int | None,
                 rotation: str | None = None) -> int:
    """The split's index in the sample seed; checks the size and rotation arguments."""
    if rotation is not None and rotation not in ("so3", "z", "none"):
        raise ValueError(f"rotation must be 'so3', 'z' or 'none', got {rotation!r}")
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {list(_SPLITS)}, got {split!r}")
    for name, v in (("num_samples", num_samples), ("num_points", num_points)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    return _SPLITS[split]


def _legacy(mesh: object) -> Mesh:
    return (
        np.asarray(mesh.vertices, dtype=np.float64).copy(),  # type: ignore[attr-defined]
        np.asarray(mesh.triangles, dtype=np.int64).copy(),
    )  # type: ignore[attr-defined]


@functools.cache
def unit(name: str) -> Mesh:
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


def place(
    mesh: Mesh,
    scale: np.ndarray | float = 1.0,
    offset: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Mesh:
    v, f = mesh
    return v * np.asarray(scale, dtype=np.float64) + np.asarray(offset), f


def merge(meshes: list[Mesh]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate meshes; also the part index of every face, [F]."""
    vs, fs, ids, n = [], [], [], 0
    for i, (v, f) in enumerate(meshes):
        vs.append(v)
        fs.append(f + n)
        ids.append(np.full(len(f), i))
        n += len(v)
    return np.concatenate(vs), np.concatenate(fs), np.concatenate(ids)


def random_rotation(rng: np.random.Generator, mode: str) -> np.ndarray:
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


def pose(
    pts: np.ndarray, nrm: np.ndarray, lin: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Apply the linear map ``lin`` [3, 3] to points and (inverse-transpose) normals."""
    p = pts @ lin.T  # [N, 3]
    n = nrm @ np.linalg.inv(lin)  # [N, 3] = (lin^{-T} n^T)^T
    return p, n / np.linalg.norm(n, axis=1, keepdims=True).clip(min=1e-12)
