"""Per-ring height offsets of a sensor-frame KITTI scan against its ground plane.

    python train/lidar_rings.py ../shared/data/kitti_object_sample/training/velodyne/004139.bin

Tests one explanation of the road/sidewalk alternation by ring that the
LiDAR models show near the sensor on KITTI 004139: that the HDL-64's lasers
disagree on height by a few centimetres, about a curb's height against the
model's height-above-ground feature. Points between ``--near`` and ``--far``
metres (horizontal range) and below ``--below`` metres (sensor frame: the road
lies about 1.73 m down) are grouped into rings by their elevation angle
:math:`\\epsilon = \\operatorname{atan2}(z, \\sqrt{x^2 + y^2})` (a ring ends at a
gap of more than ``--gap`` degrees between sorted angles), a plane
:math:`z = ax + by + c` is fitted by least squares, refitted five times on the
points within ``--inlier`` metres of it, and each ring's median residual over
its inliers is printed. Rings closer together than ``--gap`` merge (far from
the sensor the beams' ground rings are closer than the angle noise).
"""

import argparse

import numpy as np


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scan", help="a KITTI velodyne .bin (float32 x, y, z, intensity)")
    p.add_argument("--near", type=float, default=4.0)
    p.add_argument("--far", type=float, default=14.0)
    p.add_argument("--below", type=float, default=-1.2)
    p.add_argument("--gap", type=float, default=0.15)
    p.add_argument("--inlier", type=float, default=0.08)
    p.add_argument("--min-points", type=int, default=200)
    a = p.parse_args(argv)
    pts = np.fromfile(a.scan, np.float32)
    if pts.size % 4:
        raise SystemExit(f"{a.scan}: {pts.size} floats, not a multiple of 4 "
                         "(x, y, z, intensity)")
    pts = pts.reshape(-1, 4)[:, :3].astype(np.float64)
    r = np.linalg.norm(pts[:, :2], axis=1)  # [N] horizontal range
    sel = (r > a.near) & (r < a.far) & (pts[:, 2] < a.below)
    q, r = pts[sel], r[sel]  # [M, 3], [M]
    if len(q) < 3:
        raise SystemExit(f"{a.scan}: {len(q)} points in the band, need 3")
    el = np.degrees(np.arctan2(q[:, 2], r))  # [M] elevation angle
    e = np.sort(el)
    cut = np.where(np.diff(e) > a.gap)[0]
    edges = np.r_[e[0] - 1, (e[cut] + e[cut + 1]) / 2, e[-1] + 1]
    ring = np.digitize(el, edges) - 1  # [M] ring index, lowest beam first
    design = np.c_[q[:, 0], q[:, 1], np.ones(len(q))]  # [M, 3]
    keep = np.ones(len(q), bool)
    for _ in range(5):
        coef, *_ = np.linalg.lstsq(design[keep], q[keep, 2], rcond=None)
        res = q[:, 2] - design @ coef  # [M] height above the plane
        keep = np.abs(res) < a.inlier
    print(f"{a.scan}: {len(edges) - 1} rings between {a.near} and {a.far} m; plane "
          f"z = {coef[0]:+.4f} x {coef[1]:+.4f} y {coef[2]:+.3f}, "
          f"{keep.mean():.0%} of the band within {a.inlier} m of it")
    print("| ring | elevation (deg) | range (m) | inliers | median height above the plane (cm) |")
    print("|---:|---:|---:|---:|---:|")
    meds = []
    for k in np.unique(ring):
        s = (ring == k) & keep
        if s.sum() >= a.min_points:
            meds.append(np.median(res[s]))
            print(f"| {k} | {np.median(el[s]):.2f} | {np.median(r[s]):.1f} | {s.sum()} "
                  f"| {100 * meds[-1]:+.1f} |")
    if meds:
        print(f"spread of the ring medians: {100 * (max(meds) - min(meds)):.1f} cm "
              f"({len(meds)} rings with >= {a.min_points} inliers)")


if __name__ == "__main__":
    main()
