"""LiDAR gallery from TRAINED models on the held-out real frame (SemanticKITTI 000750).

Usage (after `pointsam train train/lidar/{plain,axial,local_global}.yaml`, or a
`pointsam sweep` of them):

    PYTHONPATH=. python viz/render_lidar_gallery.py \
        --best runs/lidar_both_plain/best.pt --held-out runs/lidar_plain/best.pt \
        --axial runs/lidar_axial/best.pt --local-global runs/lidar_local_global/best.pt

Writes into viz/gallery/ (work files in viz/out/lidar/):

- ``lidar_kitti_004139_pred.png``: the same model on the real sensor-frame KITTI
  scan 004139 (no per-point labels: a check by eye), top view within 40 m;
- ``lidar_000750_pred_vs_true.png``: the whole frame 000750 (every point, never
  seen in training), true labels, predicted labels and the errors (red = wrong,
  grey = right, black = unlabeled), top view;
- from the trained axial model on a 15 m crop of 000750 around a parked car
  (the first stage that holds the attention):
  ``lidar_axial_axis_weights.png`` (per-point LAFF weights of the x/y/z tubes,
  RGB) and ``lidar_axial_x_tube_neighbours.png`` (a query's neighbour weights
  along the x tube);
- from the trained local_global model on the same crop:
  ``lidar_local_neighbours.png``, ``lidar_global_tokens.png`` and
  ``lidar_laff_local_vs_global.png`` (LAFF weight of the local branch).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "open3d_ml_demo_data/examples/demo_data"


def load_run(path: Path):
    """A ``pointsam train`` ``best.pt`` -> model in eval mode, and what the
    pictures need of its run (model name and args, classes, whole-scan sizes)."""
    from pointsam.engine.predict import load_trained

    model, _, cfg, meta = load_trained(path)
    info = {"model": meta["model_name"], "args": dict(meta["model_args"]),
            "classes": list(meta["class_names"]),
            "inference": {"voxel_size": cfg.train.voxel_size,
                          "chunk_points": cfg.train.chunk_points,
                          "votes": cfg.train.votes}}
    return model, info


def kitti_palette(names):
    from pointsam.data.kitti import semantic_kitti_config

    cfg = semantic_kitti_config()
    inv = cfg["learning_map_inv"]
    return np.array([[c / 255 for c in reversed(cfg["color_map"][inv[i + 1]])]
                     for i in range(len(names))])


def pred_vs_true(model, ck, frame, out: Path, backend: str) -> Path:
    from pointsam.engine.inference import predict_scan
    from pointsam.viz import Panel, render_figure

    names = ck["classes"]
    pal = kitti_palette(names)
    prob = predict_scan(model, frame, **ck["inference"])
    pred = prob.argmax(1).numpy()
    y = frame.y.numpy()
    lab = y >= 0
    acc = float((pred[lab] == y[lab]).mean())
    true_c = np.where(lab[:, None], pal[np.clip(y, 0, None)], 0.0)
    err = np.where(lab[:, None], np.where((pred == y)[:, None], 0.78, [[0.9, 0.1, 0.1]]),
                   0.0)
    present = sorted(set(y[lab].tolist()) | set(pred.tolist()))
    legend = [(names[c], pal[c]) for c in present]
    pos = frame.pos - frame.pos.mean(0)
    panels = [Panel(pos, colors=true_c, title="true labels (black: unlabeled)",
                    legend=legend),
              Panel(pos, colors=pal[pred], title="predicted labels"),
              Panel(pos, colors=err, title=f"errors in red ({100 * (1 - acc):.1f}% of "
                    "labelled points)",
                    )]
    render_figure(panels, out, size=(900, 1500), views=("top",), backend=backend,
                  title=f"SemanticKITTI 000750 (held out), {len(pos)} points: "
                  f"{ck['model']} {ck['args'].get('attention') or 'plain'}",
                  point_size=1.5)
    return out


def kitti_scan(model, ck, path: Path, out: Path, backend: str) -> Path:
    """Predicted labels of the real sensor-frame KITTI scan (no labels: by eye)."""
    from pointsam.data import read_cloud
    from pointsam.engine.inference import predict_scan
    from pointsam.viz import Panel, render_figure

    names = ck["classes"]
    pal = kitti_palette(names)
    d = read_cloud(path)
    pred = predict_scan(model, d, **ck["inference"]).argmax(1).numpy()
    near = (d.pos[:, :2].norm(dim=1) < 40).numpy()  # the dense part around the car
    legend = [(names[c], pal[c]) for c in sorted(set(pred[near].tolist()))]
    render_figure([Panel(d.pos[near], colors=pal[pred[near]], legend=legend,
                         title="predicted labels, points within 40 m of the sensor")],
                  out, size=(900, 760), views=("top",), backend=backend,
                  title=f"KITTI 004139 (sensor frame, {len(pred)} points, no labels): "
                  f"{ck['args'].get('attention') or 'plain'}, "
                  f"{ck['inference']['votes']} vote(s)", point_size=1.5)
    return out


def crop_around_car(frame, radius: float = 15.0):
    from torch_geometric.data import Data

    cars = (frame.y == 0).nonzero().view(-1)
    c = frame.pos[cars].mean(0) if cars.numel() else frame.pos.mean(0)
    near = ((frame.pos[:, :2] - c[:2]) ** 2).sum(1) < radius**2
    pos = frame.pos[near]
    return Data(pos=pos - pos.mean(0), y=frame.y[near])


def attention_maps(model, ck, crop, work: Path, backend: str):
    from pointsam.viz import visualize

    q = int(((crop.pos[:, :2]) ** 2).sum(1).argmin())  # the point nearest the centre
    return visualize(model, crop, work, class_names=ck["classes"], task="semseg",
                     size=(720, 300), backend=backend, query=q, ply=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--best", type=Path, required=True,
                    help="model for the KITTI 004139 picture (the shipped one)")
    ap.add_argument("--held-out", type=Path, default=None,
                    help="model for pred vs true on 000750: one that never saw "
                    "000750 (a fold-A run; default: --best)")
    ap.add_argument("--axial", type=Path, default=None)
    ap.add_argument("--local-global", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "viz/gallery")
    ap.add_argument("--work", type=Path, default=ROOT / "viz/out/lidar")
    ap.add_argument("--backend", default="auto", choices=("auto", "open3d", "numpy"))
    a = ap.parse_args()
    from pointsam.data.lidar_frames import read_learning_frame

    frame = read_learning_frame(a.data / "points/000750.npy",
                                a.data / "labels/000750.npy")
    a.out.mkdir(parents=True, exist_ok=True)
    a.work.mkdir(parents=True, exist_ok=True)
    written = []
    model, ck = load_run(a.held_out or a.best)
    written.append(pred_vs_true(model, ck, frame,
                                a.out / "lidar_000750_pred_vs_true.png", a.backend))
    model, ck = load_run(a.best)
    kitti = a.data.parents[2] / "kitti_object_sample/training/velodyne/004139.bin"
    if kitti.is_file():
        written.append(kitti_scan(model, ck, kitti, a.out / "lidar_kitti_004139_pred.png",
                                  a.backend))
    crop = crop_around_car(frame)
    # file name endings of visualize()'s pictures (the stage that holds the
    # attention: the grid configs put it after the last set abstraction)
    picks = {
        "axial": (a.axial, {"_attn__axis.png": "lidar_axial_axis_weights.png",
                            "_attn_branches_0__attn_neighbour.png":
                            "lidar_axial_x_tube_neighbours.png"}),
        "local_global": (a.local_global, {
            "_attn_local__attn_neighbour.png": "lidar_local_neighbours.png",
            "_attn_glob__attn_token.png": "lidar_global_tokens.png",
            "_attn_fuse__a_branch.png": "lidar_laff_local_vs_global.png"}),
    }
    for name, (path, table) in picks.items():
        if path is None:
            continue
        m, c = load_run(path)
        paths = attention_maps(m, c, crop, a.work / name, a.backend)
        for ending, target in table.items():
            hits = sorted(p for p in paths if p.name.endswith(ending))
            if hits:  # the first stage with that attention
                dst = a.out / target
                shutil.copyfile(hits[0], dst)
                written.append(dst)
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
