r"""Headless 3D rendering of coloured point clouds (the tiles of a figure).

A :class:`Panel` is a cloud with per-point weights, labels or colours;
:func:`render_views` draws one from several cameras into ``uint8`` images, which
:mod:`pointsam.viz.figure` composes with matplotlib (titles, colour bar,
legend, markers).

Backends:

- ``"open3d"``: :class:`open3d.visualization.rendering.OffscreenRenderer`
  (Filament). It needs no display: without one Open3D falls back to headless
  mode, on a GPU-less machine through Mesa's CPU Vulkan driver (Debian
  ``libvulkan1`` and ``mesa-vulkan-drivers``) or EGL. Post-processing is turned
  off so that the colours in the PNG are exactly the colours asked for.
- ``"numpy"``: a small z-buffered point splatter with the same cameras, for
  machines where no Open3D renderer can start.
- ``"auto"`` (default): ``open3d`` when a probe render in a child process works
  (checked once per process, so a driver crash cannot take the caller down),
  else ``numpy`` with a warning. ``POINTSAM_VIZ_BACKEND`` overrides it.

Cameras look at the robust centre of the cloud (2nd-98th percentile box) from a
distance that fits its bounding sphere; ``up`` says which axis is up (``"z"`` for
LiDAR and ModelNet meshes, ``"y"`` for clouds in the OpenGL convention).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .colors import GREY, QUERY_COLOR, colormap, to_numpy

__all__ = ["Panel", "VIEWS", "render_views", "renderer_available",
           "resolve_backend", "show_window", "has_display", "project"]

#: View name -> (camera direction from the centre, up vector), in a z-up frame.
VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "iso": ((1.0, -1.0, 0.8), (0.0, 0.0, 1.0)),
    "front": ((0.0, -1.0, 0.15), (0.0, 0.0, 1.0)),
    "side": ((1.0, 0.0, 0.15), (0.0, 0.0, 1.0)),
    "top": ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0)),
    "back": ((0.0, 1.0, 0.15), (0.0, 0.0, 1.0)),
}
_FOV = 40.0


@dataclass
class Panel:
    r"""One cloud to draw, with what to colour it by.

    Exactly one of ``values`` / ``colors`` is usually given (neither: grey).

    Attributes:
        pos: Points ``[N, 3]``.
        values: Scalar weights ``[N]`` drawn with the colour map; ``NaN`` marks
            points without a value (drawn grey and small, the rest drawn larger).
        colors: Ready RGB ``[N, 3]`` in :math:`[0, 1]` (labels, axis weights).
        title: Text above the panel's row.
        query: Index of a point to mark (the query of a neighbour map).
        markers: Extra positions ``[Q, 3]`` to mark (token centres).
        marker_colors: RGB ``[Q, 3]`` of the markers (default: the query colour).
        legend: Swatches ``[(name, rgb)]`` for this panel (classes, axes).
        focus: ``(centre [3], radius)`` to zoom the cameras on (a query's
            neighbourhood); default: the whole cloud.
    """

    pos: Any
    values: Any = None
    colors: Any = None
    title: str = ""
    query: int | None = None
    markers: Any = None
    marker_colors: Any = None
    legend: Sequence[tuple[str, Sequence[float]]] = ()
    focus: Any = None

    def __post_init__(self) -> None:
        self.pos = to_numpy(self.pos, np.float64)
        if self.pos.ndim != 2 or self.pos.shape[1] != 3 or len(self.pos) == 0:
            raise ValueError(f"Panel.pos must be a non-empty [N, 3] array, got shape "
                             f"{tuple(self.pos.shape)}")
        if not np.all(np.isfinite(self.pos)):
            raise ValueError("Panel.pos holds NaN or Inf coordinates")
        n = len(self.pos)
        if self.values is not None:
            self.values = to_numpy(self.values, np.float64).reshape(-1)
            if self.values.shape[0] != n:
                raise ValueError(f"Panel.values has {self.values.shape[0]} entries "
                                 f"for {n} points")
        if self.colors is not None:
            self.colors = to_numpy(self.colors, np.float64)
            if self.colors.shape != (n, 3):
                raise ValueError(f"Panel.colors must be [{n}, 3], got "
                                 f"{tuple(self.colors.shape)}")
        if self.query is not None and not 0 <= int(self.query) < n:
            raise ValueError(f"query {self.query} is out of range for {n} points")
        if self.markers is not None:
            self.markers = to_numpy(self.markers, np.float64).reshape(-1, 3)


# --------------------------------------------------------------------------- cameras
def _camera(pos: np.ndarray, view: str, up: str, aspect: float,
            focus: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eye, centre, up) of ``view`` for a cloud ``pos`` [N, 3] (or a focus)."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; known: {sorted(VIEWS)}")
    if up not in ("z", "y"):
        raise ValueError(f"up must be 'z' or 'y', got {up!r}")
    d, u = (np.asarray(v, dtype=np.float64) for v in VIEWS[view])
    if up == "y":  # z-up frame -> y-up frame: (x, y, z) -> (x, z, -y)
        d, u = d[[0, 2, 1]] * [1, 1, -1], u[[0, 2, 1]] * [1, 1, -1]
    if focus is not None:
        centre, radius = np.asarray(focus[0], dtype=np.float64), float(focus[1])
    else:
        lo, hi = np.percentile(pos, 2, axis=0), np.percentile(pos, 98, axis=0)
        centre = (lo + hi) / 2
        # every point of a small cloud in frame (a chair's leg tips); a large
        # scan's farthest 1% (stray returns) may fall outside
        radius = float(np.percentile(np.linalg.norm(pos - centre, axis=1),
                                     100 if len(pos) < 5000 else 99))
    radius = max(radius, 1e-6)
    half = math.radians(_FOV) / 2
    half = min(half, math.atan(math.tan(half) * aspect))
    dist = radius / math.sin(half) * 1.08  # a margin: no point on the frame
    eye = centre + d / np.linalg.norm(d) * dist
    return eye, centre, u


def _auto_point_size(n: int, w: int, h: int) -> float:
    return float(np.clip(0.9 * math.sqrt(w * h / max(n, 1)), 1.0, 5.0))


# --------------------------------------------------------------------------- backends
class _Open3DRenderer:
    """One cached Filament renderer (creating one costs about half a second)."""

    _instance: _Open3DRenderer | None = None

    def __init__(self, width: int, height: int) -> None:
        _prepare_headless()
        from open3d.visualization import rendering

        self.rendering = rendering
        self.size = (width, height)
        self.r = rendering.OffscreenRenderer(width, height)
        self.r.scene.view.set_post_processing(False)
        self.r.scene.set_background([1.0, 1.0, 1.0, 1.0])

    @classmethod
    def get(cls, width: int, height: int) -> _Open3DRenderer:
        if cls._instance is None:
            import atexit

            atexit.register(cls.release)
        if cls._instance is None or cls._instance.size != (width, height):
            if cls._instance is not None:  # Filament aborts if geometry outlives it
                cls._instance.r.scene.clear_geometry()
            cls._instance = None  # drop the old one before making a new one
            cls._instance = cls(width, height)
        return cls._instance

    @classmethod
    def release(cls) -> None:
        """Drop the cached renderer, its geometry first (Filament's order)."""
        if cls._instance is not None:
            cls._instance.r.scene.clear_geometry()
            cls._instance = None

    def render(self, layers: list[tuple[np.ndarray, np.ndarray, float]],
               eye: np.ndarray, centre: np.ndarray, up: np.ndarray) -> np.ndarray:
        import open3d as o3d

        scene = self.r.scene
        scene.clear_geometry()
        for i, (p, c, size) in enumerate(layers):
            if len(p) == 0:
                continue
            pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
            pc.colors = o3d.utility.Vector3dVector(np.clip(c, 0.0, 1.0))
            mat = self.rendering.MaterialRecord()
            mat.shader = "defaultUnlit"
            mat.point_size = float(size)
            scene.add_geometry(f"layer{i}", pc, mat)
        self.r.setup_camera(_FOV, centre.astype(np.float32), eye.astype(np.float32),
                            up.astype(np.float32))
        img = np.asarray(self.r.render_to_image())[..., :3].copy()  # [H, W, 3]
        # leave no geometry behind: Filament aborts at interpreter exit when a
        # material instance is still in use by a renderable
        scene.clear_geometry()
        return img


def _basis(eye: np.ndarray, centre: np.ndarray, up: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right, up and forward unit vectors of a look-at camera."""
    f = centre - eye
    f = f / np.linalg.norm(f)
    s = np.cross(f, up)
    if np.linalg.norm(s) < 1e-9:  # up parallel to the view direction
        s = np.cross(f, [1.0, 0.0, 0.0] if abs(f[0]) < 0.9 else [0.0, 1.0, 0.0])
    s = s / np.linalg.norm(s)
    return s, np.cross(s, f), f


def project(points: np.ndarray, eye: np.ndarray, centre: np.ndarray, up: np.ndarray,
            width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel coordinates and depth of ``points`` [N, 3] under a view's camera.

    The same pinhole camera as Open3D's ``setup_camera`` (vertical field of view
    :data:`_FOV`), so 2D overlays (markers drawn by matplotlib) land on the
    rendered points.

    Returns:
        ``(px [N], py [N], depth [N])``; depth <= 0 is behind the camera.
    """
    s, u, f = _basis(eye, centre, up)
    focal = (height / 2) / math.tan(math.radians(_FOV) / 2)
    rel = points - eye  # [N, 3]
    z = rel @ f
    zs = np.where(z > 1e-9, z, np.inf)
    return width / 2 + focal * (rel @ s) / zs, height / 2 - focal * (rel @ u) / zs, z


def _numpy_render(layers: list[tuple[np.ndarray, np.ndarray, float]],
                  eye: np.ndarray, centre: np.ndarray, up: np.ndarray,
                  width: int, height: int) -> np.ndarray:
    """Perspective z-buffered splatting of square points (the fallback backend)."""
    idx_all, depth_all, col_all = [], [], []
    for p, c, size in layers:
        px, py, z = project(p, eye, centre, up, width, height)
        keep = z > 1e-9
        px, py, z, c = px[keep], py[keep], z[keep], c[keep]
        r = max(int(round(size)), 1)
        offs = np.arange(r) - (r - 1) / 2
        for dy in offs:
            for dx in offs:
                xi = np.floor(px + dx).astype(np.int64)
                yi = np.floor(py + dy).astype(np.int64)
                ok = (xi >= 0) & (xi < width) & (yi >= 0) & (yi < height)
                idx_all.append(yi[ok] * width + xi[ok])
                depth_all.append(z[ok])
                col_all.append(c[ok])
    img = np.full((height * width, 3), 255, dtype=np.uint8)
    if idx_all:
        idx, depth = np.concatenate(idx_all), np.concatenate(depth_all)
        col = np.concatenate(col_all)
        order = np.lexsort((depth, idx))  # by pixel, nearest first
        first = np.ones(len(order), dtype=bool)
        first[1:] = idx[order][1:] != idx[order][:-1]
        win = order[first]
        img[idx[win]] = (np.clip(col[win], 0, 1) * 255).round().astype(np.uint8)
    return img.reshape(height, width, 3)


def has_display() -> bool:
    """Whether an interactive window can open (a display server or a desktop OS)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _prepare_headless() -> None:
    # Without a display, make Mesa's EGL pick its surfaceless platform; Open3D
    # itself falls back to headless (Vulkan or EGL) when GLFW cannot open X11.
    if not has_display():
        os.environ.setdefault("EGL_PLATFORM", "surfaceless")


# The probe needs only NumPy and Open3D (not torch), so it starts quickly.
_PROBE = """
import numpy as np
from open3d.visualization import rendering
import open3d as o3d
r = rendering.OffscreenRenderer(64, 48)
r.scene.view.set_post_processing(False)
r.scene.set_background([1.0, 1.0, 1.0, 1.0])
pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(
    np.random.default_rng(0).normal(size=(200, 3))))
pc.colors = o3d.utility.Vector3dVector(np.zeros((200, 3)))
m = rendering.MaterialRecord()
m.shader, m.point_size = "defaultUnlit", 3.0
r.scene.add_geometry("p", pc, m)
r.setup_camera(40.0, [0, 0, 0], [0, 0, 8], [0, 1, 0])
img = np.asarray(r.render_to_image())
assert img.shape[:2] == (48, 64), img.shape
assert img.std() > 5, "blank image"
r.scene.clear_geometry()  # else Filament aborts at exit (material still in use)
print("OK")
"""
_AVAILABLE: tuple[bool, str] | None = None


def renderer_available(timeout: float = 120.0) -> tuple[bool, str]:
    """Whether Open3D's offscreen renderer works here, and why not if it does not.

    The probe renders a tiny cloud in a child process (a driver that crashes
    cannot take the caller down); the answer is cached for the process.

    Returns:
        ``(True, "")`` or ``(False, reason)``.
    """
    global _AVAILABLE
    if _AVAILABLE is None:
        env = dict(os.environ)
        if not has_display():
            env.setdefault("EGL_PLATFORM", "surfaceless")
        try:
            res = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True,
                                 text=True, timeout=timeout, env=env)
            if res.returncode == 0 and "OK" in res.stdout:
                _AVAILABLE = (True, "")
            else:
                tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
                _AVAILABLE = (False, f"Open3D OffscreenRenderer failed (exit "
                                     f"{res.returncode}): {' | '.join(tail)}")
        except subprocess.TimeoutExpired:
            _AVAILABLE = (False, f"Open3D OffscreenRenderer probe hung > {timeout}s")
        except OSError as e:  # pragma: no cover
            _AVAILABLE = (False, f"cannot start the renderer probe: {e}")
    return _AVAILABLE


def resolve_backend(backend: str = "auto") -> str:
    """``"open3d"`` or ``"numpy"`` for ``backend`` (``"auto"`` probes once)."""
    backend = os.environ.get("POINTSAM_VIZ_BACKEND", backend) if backend == "auto" \
        else backend
    if backend not in ("auto", "open3d", "numpy"):
        raise ValueError(f"backend must be 'auto', 'open3d' or 'numpy', got "
                         f"{backend!r}")
    if backend == "auto":
        ok, why = renderer_available()
        if not ok:
            warnings.warn(f"{why}; drawing with the NumPy point splatter instead",
                          RuntimeWarning, stacklevel=3)
        backend = "open3d" if ok else "numpy"
    return backend


def render_views(pos: Any, colors: Any, *, views: Sequence[str] = ("iso", "top"),
                 width: int = 160, height: int = 120, point_size: float | None = None,
                 emphasis: Any = None, up: str = "z", backend: str = "auto",
                 focus: Any = None
                 ) -> list[np.ndarray]:
    """Render one coloured cloud from several views.

    Args:
        pos: Points ``[N, 3]``.
        colors: RGB ``[N, 3]`` in :math:`[0, 1]`.
        views: Names from :data:`VIEWS`.
        width: Width of each view in pixels.
        height: Height of each view in pixels.
        point_size: Point size in pixels (default: from the density).
        emphasis: Bool ``[N]``; these points are drawn twice as large (neighbours).
        up: ``"z"`` or ``"y"``.
        backend: ``"auto"``, ``"open3d"`` or ``"numpy"``.
        focus: ``(centre, radius)`` the cameras frame (default: the cloud).

    Returns:
        One ``[height, width, 3]`` uint8 image per view.
    """
    p = to_numpy(pos, np.float64)
    c = to_numpy(colors, np.float64)
    n = len(p)
    ps = point_size if point_size is not None else _auto_point_size(n, width, height)
    if emphasis is not None:
        e = to_numpy(emphasis).astype(bool).reshape(-1)
        layers = [(p[~e], c[~e], ps), (p[e], c[e], ps * 2)]
    else:
        layers = [(p, c, ps)]
    backend = resolve_backend(backend)
    out = []
    for v in views:
        eye, centre, upv = _camera(p, v, up, width / height, focus)
        if backend == "open3d":
            img = _Open3DRenderer.get(width, height).render(layers, eye, centre, upv)
        else:
            img = _numpy_render(layers, eye, centre, upv, width, height)
        out.append(img)
    return out


def show_window(pos: Any, weight: Any = None, *, colors: Any = None,
         query: int | None = None, title: str = "pointsam", cmap: str = "viridis",
         vmin: float | None = None, vmax: float | None = None) -> None:
    """Open an interactive Open3D window on a cloud coloured by its weights.

    Raises:
        RuntimeError: when there is no display (use :func:`render_attention`).
    """
    if not has_display():
        raise RuntimeError("no display (DISPLAY/WAYLAND_DISPLAY unset): use "
                           "render_attention(..., out='x.png') for a headless PNG")
    import open3d as o3d

    p = to_numpy(pos, np.float64)
    cols = colormap(weight, vmin, vmax, cmap=cmap) if weight is not None else (
        to_numpy(colors, np.float64) if colors is not None
        else np.tile(GREY, (len(p), 1)))
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    pc.colors = o3d.utility.Vector3dVector(cols)
    geoms: list[Any] = [pc]
    if query is not None:
        r = 0.01 * float(np.linalg.norm(p.max(0) - p.min(0)))
        s = o3d.geometry.TriangleMesh.create_sphere(radius=max(r, 1e-6))
        s.translate(p[int(query)])
        s.paint_uniform_color(QUERY_COLOR)
        geoms.append(s)
    o3d.visualization.draw_geometries(geoms, window_name=title)
