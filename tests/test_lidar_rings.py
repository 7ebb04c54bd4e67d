"""train/lidar_rings.py: per-ring height offsets against the ground plane."""

import runpy
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = runpy.run_path(str(ROOT / "train" / "lidar_rings.py"), run_name="lidar_rings")


def _scan(path, offsets, tilt=(0.004, -0.003)):
    """Rings of a level sensor 1.73 m above a tilted ground plane, ring k raised
    by ``offsets[k]`` metres; a float32 KITTI .bin (x, y, z, intensity). The
    tilt spreads a ring's elevation angles by at most 0.3 degrees, less than
    the 1.5 degrees between rings."""
    rng = np.random.default_rng(0)
    rows = []
    for k, off in enumerate(offsets):
        el = np.radians(-20.0 + 1.5 * k)  # 4.8 m (ring 0) to 12.5 m (ring 7) away
        r = 1.73 / np.tan(-el)
        az = rng.uniform(-np.pi / 2, np.pi / 2, 3000)  # the front half: x > 0
        x, y = r * np.cos(az), r * np.sin(az)
        z = -1.73 + tilt[0] * x + tilt[1] * y + off + rng.normal(0, 0.005, az.size)
        rows.append(np.c_[x, y, z, np.zeros_like(x)])
    np.concatenate(rows).astype(np.float32).tofile(path)


def test_ring_offsets_are_read_back_against_the_plane(tmp_path, capsys):
    offsets = [0.0, 0.03, -0.02, 0.01, 0.0, -0.03, 0.02, 0.0]
    f = tmp_path / "scan.bin"
    _scan(f, offsets)
    TOOL["main"]([str(f)])
    out = capsys.readouterr().out
    rows = [ln.split("|") for ln in out.splitlines()
            if ln.startswith("| ") and ln.split("|")[1].strip().isdigit()]
    assert len(rows) == len(offsets)
    got = np.array([float(r[5]) for r in rows])  # cm above the fitted plane
    want = 100 * (np.array(offsets) - np.mean(offsets))  # the plane takes the mean
    # the tilt (3 cm at ring 7 over the front half) is fitted away; medians of
    # 3000 points with 0.5 cm noise
    # and the sampling of the tilt: well within 0.3 cm
    assert np.abs(got - got.mean() - want).max() < 0.3
    spread = float(out.split("spread of the ring medians: ")[1].split()[0])
    assert abs(spread - 100 * (max(offsets) - min(offsets))) < 0.3


def test_a_file_that_is_not_a_kitti_scan_is_refused(tmp_path):
    f = tmp_path / "bad.bin"
    np.zeros(6, np.float32).tofile(f)
    with pytest.raises(SystemExit, match="not a multiple of 4"):
        TOOL["main"]([str(f)])
