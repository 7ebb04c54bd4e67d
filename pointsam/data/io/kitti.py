r"""KITTI Velodyne ``.bin`` scans and SemanticKITTI ``.label`` files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._common import CloudFormatError
from ._util import PathLike

__all__ = ["read_kitti_bin", "read_kitti_label", "infer_bin_columns", "BIN_WIDTHS"]

#: The float32 widths a ``.bin`` scan is read with when none is given: KITTI
#: x y z remission, nuScenes x y z intensity ring, and six columns (Waymo in
#: KITTI format x y z intensity elongation timestamp; xyzrgb of S3DIS, ScanNet,
#: SUN RGB-D).
BIN_WIDTHS = (4, 5, 6)
_MIN_ROWS = 16  # fewer points than this: too few to judge a reading
_MAX_RANGE = 200.0  # metres from the sensor, 99% of the points
_MAX_Z = 50.0  # metres above or below the sensor, 99% of the points
_PHASE = 0.5  # row-phase spread (see _phase_spread) below it: a consistent reading
_MIXED = 1.0  # at or above it: a column that interleaves different quantities


def _nonempty_size(path: Path) -> int:
    """The size in bytes of an existing, non-empty file; a clear error otherwise."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise CloudFormatError(f"{path}: empty file")
    return size


def read_kitti_bin(path: PathLike, columns: int = 4) -> np.ndarray:
    """Read a Velodyne ``.bin`` scan: float32 :math:`(N, columns)` (x, y, z, remission).

    Raises :class:`CloudFormatError` naming the file when its size is not a
    multiple of ``4 * columns`` bytes (a truncated scan).
    """
    path = Path(path)
    size = _nonempty_size(path)
    if size % (4 * columns):
        raise CloudFormatError(
            f"{path}: truncated or malformed scan, {size} bytes is not a multiple of "
            f"{4 * columns} (float32 x {columns} columns)"
        )
    return np.fromfile(path, dtype="<f4").reshape(-1, columns)


def read_kitti_label(
    path: PathLike, num_points: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a SemanticKITTI ``.label``: (semantic = low 16 bits, instance = high 16).

    Raises :class:`CloudFormatError` naming the file when its length is not a
    multiple of 4 bytes or differs from ``num_points``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size % 4:
        raise CloudFormatError(f"{path}: {size} bytes is not a multiple of 4 (uint32)")
    lab = np.fromfile(path, dtype="<u4")
    if num_points is not None and lab.size != num_points:
        raise CloudFormatError(
            f"{path}: label length mismatch, {lab.size} labels for a scan of "
            f"{num_points} points"
        )
    return (lab & 0xFFFF).astype(np.int64), (lab >> 16).astype(np.int64)


def _problem(arr: np.ndarray) -> str | None:
    """Why ``arr`` [N, C] is no sensor-like scan, or ``None`` if it may be one."""
    if len(arr) < _MIN_ROWS:
        return f"{len(arr)} points, too few to judge"
    if not np.isfinite(arr).all():
        return "non-finite values"
    xyz = arr[:, :3].astype(np.float64)  # [N, 3]
    rng = float(np.quantile(np.linalg.norm(xyz, axis=1), 0.99))
    if rng > _MAX_RANGE:
        return f"99% of the points within {rng:.3g} m, not {_MAX_RANGE:.0f} m"
    z = float(np.quantile(np.abs(xyz[:, 2]), 0.99))
    if z > _MAX_Z:
        return f"|z| up to {z:.3g} m on 99% of the points, not {_MAX_Z:.0f} m"
    lo, hi = float(arr[:, 3].min()), float(arr[:, 3].max())
    if lo < 0 or hi > 255:
        return (f"4th column in [{lo:.3g}, {hi:.3g}], no intensity "
                "(in [0, 1] or [0, 255])")
    return None


def _phase_spread(arr: np.ndarray) -> float:
    r"""How much a column changes with the row's phase: large for a wrong width.

    Read with the wrong width, a column takes different quantities on
    alternating rows (x, then y, then an intensity...). For periods
    :math:`p \in \{2, 3, 5\}` the medians :math:`m_{pk}` of each column over
    the rows :math:`i \equiv k \pmod p` are compared:
    :math:`\max_{p, c} (\max_k m_{pkc} - \min_k m_{pkc}) / \mathrm{IQR}_c`.
    """
    a = arr.astype(np.float64)
    q25, q75 = np.percentile(a, [25, 75], axis=0)  # [C] each
    iqr = q75 - q25 + 1e-6
    worst = 0.0
    for p in (2, 3, 5):
        n = len(a) // p * p
        if n < 4 * p:
            continue
        med = np.median(a[:n].reshape(-1, p, a.shape[1]), axis=0)  # [p, C]
        worst = max(worst, float(((med.max(0) - med.min(0)) / iqr).max()))
    return worst


def infer_bin_columns(path: PathLike, default: int = 4) -> int:
    r"""The float32 width of a ``.bin`` scan, judged from the geometry of each reading.

    Each width of :data:`BIN_WIDTHS` whose row size divides the file is read and
    kept when it looks like a sensor scan: at least 16 points, finite values,
    99% of the points within 200 m of the origin and within 50 m of it in z, and
    a 4th column (remission / intensity) in [0, 1] or [0, 255]. One such
    reading is the answer. When several are, the row phases decide
    (:func:`_phase_spread`; a wrong width interleaves different quantities in
    one column): the one reading whose columns are alike on every phase
    (spread :math:`< 0.5`) while every other one is mixed (:math:`\ge 1`);
    or ``default`` when none is mixed (the data cannot tell the widths apart).
    Otherwise :class:`CloudFormatError` lists each width and why it was kept
    or refused.

    Args:
        path: The ``.bin`` file.
        default: The width preferred when the data cannot tell (4: KITTI; 5 for
            nuScenes ``*.pcd.bin``).

    Example:
        >>> import tempfile, pathlib
        >>> g = np.random.default_rng(0)
        >>> scan = np.hstack([g.uniform(-40, 40, (60, 3)), g.uniform(0, 1, (60, 1))])
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.bin"
        >>> scan.astype("<f4").tofile(p)
        >>> infer_bin_columns(p)
        4
    """
    path = Path(path)
    size = _nonempty_size(path)
    flat = np.fromfile(path, dtype="<f4")  # [size / 4]
    why: dict[int, str] = {}
    for c in BIN_WIDTHS:
        if size % (4 * c):
            why[c] = f"{size} bytes is not a multiple of {4 * c}"
        else:
            why[c] = _problem(flat.reshape(-1, c)) or "plausible"
    ok = [c for c in BIN_WIDTHS if why[c] == "plausible"]
    if len(ok) == 1:
        return ok[0]
    if len(ok) > 1:
        spread = {c: _phase_spread(flat.reshape(-1, c)) for c in ok}
        alike = [c for c in ok if spread[c] < _PHASE]
        mixed = [c for c in ok if spread[c] >= _MIXED]
        if len(alike) == 1 and len(mixed) == len(ok) - 1:
            return alike[0]
        if not mixed and default in ok:
            return default
        for c in ok:
            why[c] = f"plausible (row-phase spread {spread[c]:.2f})"
    listing = "; ".join(f"{c} columns: {why[c]}" for c in BIN_WIDTHS)
    if ok:
        raise CloudFormatError(
            f"{path}: cannot tell how many float32 columns it holds, "
            f"{len(ok)} readings look like a scan ({listing}); pass bin_columns "
            "(--bin-columns N) to say which")
    raise CloudFormatError(
        f"{path}: no reading as float32 columns looks like a sensor scan "
        f"({listing}); the file is truncated or malformed, or pass bin_columns "
        "(--bin-columns N) for its layout")
