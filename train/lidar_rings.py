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

With ``--labels-of`` (a run folder or a shipped model's name, repeatable) the
scan is labelled as ``pointsam predict`` labels it (one vote, the run's voxel
and chunk sizes) and the share of the band's points labelled road and
sidewalk is printed per range band (``--bands``, metres):

    PYTHONPATH=. python train/lidar_rings.py .../004139.bin \
        --labels-of pointnet2_lite_lidarseg_kitti --labels-of runs/lidar_plain_cw
"""

import argparse
from pathlib import Path

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
    p.add_argument("--labels-of", action="append", default=[],
                   help="a run folder (its best.pt) or a shipped model's name")
    p.add_argument("--bands", type=float, nargs="+", default=[4, 5, 6, 7, 9, 11, 14])
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
    if a.labels_of:
        _label_bands(pts, sel, a.labels_of, a.bands)


def _label_bands(pts, sel, sources, bands):
    """Share of the band's points labelled road / sidewalk per range band."""
    import torch
    from torch_geometric.data import Data

    from pointsam.data.kitti import class_names
    from pointsam.engine.inference import predict_scan

    names = class_names()
    road, side = names.index("road"), names.index("sidewalk")
    r = np.linalg.norm(pts[sel, :2], axis=1)  # [M]
    edges = list(zip(bands[:-1], bands[1:]))
    print("| labelled by | " + " | ".join(f"{lo:g}-{hi:g} m: sidewalk / road %"
                                          for lo, hi in edges) + " |")
    print("|---|" + "---:|" * len(edges))
    for src in sources:
        if Path(src).is_dir():
            from pointsam.engine.predict import load_trained

            model, _, cfg, _ = load_trained(Path(src) / "best.pt")
        else:
            from pointsam.engine.pretrained import load_pretrained_trained

            model, _, cfg, _ = load_pretrained_trained(src)
        model.eval()
        prob = predict_scan(model, Data(pos=torch.from_numpy(pts).float()),
                            voxel_size=cfg.train.voxel_size,
                            chunk_points=cfg.train.chunk_points)  # [N, C]
        pred = prob.argmax(1).numpy()[sel]  # [M]
        cells = []
        for lo, hi in edges:
            b = (r >= lo) & (r < hi)
            n = max(int(b.sum()), 1)
            cells.append(f"{100 * (pred[b] == side).sum() / n:.0f} / "
                         f"{100 * (pred[b] == road).sum() / n:.0f}")
        print(f"| {src} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
