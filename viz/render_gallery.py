"""Render the attention gallery that the README shows (viz/gallery/*.png).

Usage (from the repository root)::

    pointsam demo                                   # writes runs/demo/best.pt
    python viz/render_gallery.py                    # uses runs/demo/best.pt
    python viz/render_gallery.py --checkpoint CK --data ../shared/data --out viz/gallery

What it draws, with the real sample files of ../shared/data (MANIFEST.md):

1. the shipped ``pointnet2_lite_cbam_modelnet10`` (``--chair-model``; PointNet++
   lite + CBAM trained on the real ModelNet10) on the real ModelNet10 test
   ``chair_0890`` (1024-point PCD): the point gate of each stage and the channel
   gate of the first stage, predicted class in the title;
2. the demo's own pictures on a synthetic test shape (``write_demo_gallery``);
3. the real SemanticKITTI frame ``000700`` (86k points, Open3D-ML demo data):
   the true labels, top view, named by the SemanticKITTI learning map;
4. with ``--lidar-checkpoint`` (a trained semseg model): the same frame (an FPS
   sample) through its attention: the neighbours of one query point
   (``LocalAttention``), its weights over the global tokens
   (``GlobalPooledAttention``), the x-axis tube of the axial attention and the
   per-point x/y/z weights (``AxialAttention``). Without a checkpoint these
   figures are not drawn (``--untrained-probe`` draws them from untrained
   layers into ``--work`` only, never into the gallery);
5. the interactive viewer (``pointsam.viz.to_html``) of that model on the
   chair, and a screenshot of it in headless Chromium (``viewer.png``;
   skipped without Chromium).

Every figure and its raw weights (PLY) go to ``--work`` (default ``viz/out/``,
git-ignored); a few small PNGs are copied to ``--out`` under stable names.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data"
CHAIR = "modelnet10_pcd_1024/ModelNet10/pcd/chair/test/chair_0890.pcd"
KITTI = "open3d_ml_demo_data/examples/demo_data/{}/000700.npy"


def _copy(src: Path, dst: Path, picked: list[Path]) -> None:
    if src.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        picked.append(dst)
    else:
        print(f"  (not written: {src.name})", file=sys.stderr)


class AttentionProbe(torch.nn.Module):
    """Coordinates -> LocalGlobalAttention -> AxialAttention -> per-point logits.

    Untrained, it shows where each mechanism looks on a real scan.
    """

    def __init__(self, channels: int = 32, num_classes: int = 19) -> None:
        super().__init__()
        from pointsam.nn import AxialAttention, LocalGlobalAttention

        self.embed = torch.nn.Linear(3, channels)
        self.local_global = LocalGlobalAttention(channels, channels, num_heads=4, k=16,
                                                 num_global=32)
        self.axial = AxialAttention(channels, channels, num_heads=4, k=16)
        self.head = torch.nn.Linear(channels, num_classes)

    def forward(self, data) -> torch.Tensor:
        x = self.embed(data.pos)  # [N, C]
        x = x + self.local_global(x, data.pos, data.batch)  # [N, C]
        x = x + self.axial(x, data.pos, data.batch)  # [N, C]
        return self.head(x)  # [N, classes]


def modelnet10_chair(model_name: str, data: Path, work: Path, out: Path, size,
                     backend, picked: list[Path]) -> None:
    """A shipped ModelNet10 classifier on the real test chair: gates + viewer."""
    from pointsam.data import read_cloud
    from pointsam.data import transforms as T
    from pointsam.engine.pretrained import load_pretrained_trained
    from pointsam.viz import to_html, visualize
    from pointsam.viz.chromium import Browser, find_chromium

    model, task, cfg, meta = load_pretrained_trained(model_name)
    names = meta.get("class_names") or None
    chair = T.NormalizeScale()(read_cloud(data / CHAIR))
    w = work / "modelnet10_chair"
    paths = visualize(model, chair, w, class_names=names, size=size, backend=backend)
    print(f"[gallery] {model_name} on the real ModelNet10 chair: {len(paths)} files "
          f"in {w}")
    page = to_html(model, chair, w / "viewer.html", class_names=names,
                   title=f"{model_name} on ModelNet10 test chair_0890")
    print(f"[gallery] interactive viewer: {page}")
    if find_chromium() is not None:
        with Browser(1200, 680) as b:
            b.open(page, ready="window.pointsamViewer && pointsamViewer.ready",
                   hash="size=5")
            if b.errors:
                print(f"  (viewer console errors: {b.errors})", file=sys.stderr)
            b.screenshot(w / "viewer.png")
        _copy(w / "viewer.png", out / "viewer.png", picked)
    else:
        print("  (no Chromium: viewer.png not written)", file=sys.stderr)
    for p in paths:
        if p.name.endswith("point__point.png"):
            stage = p.name.split("_stages_")[1].split("_")[0]
            _copy(p, out / f"modelnet10_chair_point_gate_stage{stage}.png", picked)
        if p.name == "backbone_stages_0_attn_channel__channel.png":
            _copy(p, out / "modelnet10_chair_channel_gate_stage0.png", picked)


def demo_checkpoint(ck: Path, work: Path, out: Path, size, backend,
                    picked: list[Path]) -> None:
    """The demo checkpoint (synthetic shapes) on one of its own test shapes."""
    from pointsam.data import SyntheticShapes
    from pointsam.engine.predict import load_trained
    from pointsam.viz import write_demo_gallery

    model, task, cfg, meta = load_trained(ck)
    ds = SyntheticShapes(num_samples=24, num_points=cfg.data.num_points or 512,
                         split="test")
    w = work / "demo_on_synthetic"
    paths = write_demo_gallery(model, ds, w, index=2, size=size, backend=backend)
    print(f"[gallery] demo checkpoint on a synthetic test shape: {len(paths)} files "
          f"in {w}")
    for p in paths:
        if p.name == "backbone_stages_0_attn_point__point.png":
            _copy(p, out / "synthetic_point_gate_stage0.png", picked)


def kitti(data: Path, work: Path, out: Path, size, backend, picked: list[Path],
          lidar_checkpoint: Path | None, num_points: int, query: int | None,
          untrained_probe: bool = False) -> None:
    from pointsam import ops
    from pointsam.data.kitti import class_names
    from pointsam.viz import Panel, render_figure, visualize
    from pointsam.viz.colors import PALETTE, label_colors

    pos = torch.from_numpy(np.load(data / KITTI.format("points"))).float()
    raw = np.load(data / KITTI.format("labels")).reshape(-1).astype(np.int64)
    lab = raw - 1  # learning-map class space: 0 = unlabeled -> -1
    names = class_names()
    present = [c for c in np.unique(lab) if c >= 0]
    legend = [(names[c], PALETTE[c % len(PALETTE)]) for c in present]
    w = work / "semantickitti_000700"
    w.mkdir(parents=True, exist_ok=True)
    render_figure([Panel(pos, colors=label_colors(lab, ignore=-1),
                               legend=legend)], w / "true_labels.png",
                        size=(size[0], size[1] + 40), views=("top", "iso"),
                        title=f"SemanticKITTI 000700: true labels ({len(pos)} points)",
                        backend=backend, point_size=1.0)
    _copy(w / "true_labels.png", out / "semantickitti_000700_labels.png", picked)
    print(f"[gallery] SemanticKITTI frame: true labels in {w / 'true_labels.png'}")

    if lidar_checkpoint is None and not untrained_probe:
        print("[gallery] no --lidar-checkpoint: skipping the SemanticKITTI attention "
              "figures (untrained layers are not shown)", file=sys.stderr)
        return
    # the model sees an FPS sample of the frame, centred
    idx = ops.fps(pos, num=num_points)  # [S]
    sub = pos[idx]
    from torch_geometric.data import Data

    data_sub = Data(pos=sub - sub.mean(0), y=torch.from_numpy(lab)[idx])
    if lidar_checkpoint is not None:
        from pointsam.engine.predict import load_trained

        model, _, _, meta = load_trained(lidar_checkpoint)
        title_note = ""
    else:
        torch.manual_seed(0)
        model = AttentionProbe().eval()
        title_note = " (untrained)"
    paths = visualize(model, data_sub, w, class_names=list(names), size=size,
                      backend=backend, query=query, task="seg")
    print(f"[gallery] SemanticKITTI frame through local-global + axial attention"
          f"{title_note}: {len(paths)} files in {w}")
    if lidar_checkpoint is None:
        return  # untrained: in --work only, never in the gallery
    for p in paths:
        n = p.name
        if n == "local_global_local__attn_neighbour.png":
            _copy(p, out / "semantickitti_local_neighbours.png", picked)
        elif n == "local_global_glob__attn_token.png":
            _copy(p, out / "semantickitti_global_tokens.png", picked)
        elif n == "axial__axis.png":
            _copy(p, out / "semantickitti_axial_xyz.png", picked)
        elif n == "axial_branches_0__attn_neighbour.png":
            _copy(p, out / "semantickitti_axial_x_tube.png", picked)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, default=ROOT / "runs/demo/best.pt",
                    help="the demo checkpoint (pointsam demo), for the synthetic shape")
    ap.add_argument("--chair-model", default="pointnet2_lite_cbam_modelnet10",
                    help="a shipped ModelNet10 classifier (pointsam models) for the "
                    "real chair figures and the viewer")
    ap.add_argument("--lidar-checkpoint", type=Path, default=None,
                    help="a trained semseg checkpoint for the SemanticKITTI figures")
    ap.add_argument("--untrained-probe", action="store_true",
                    help="without --lidar-checkpoint: draw the SemanticKITTI attention "
                    "figures from untrained layers into --work (not the gallery)")
    ap.add_argument("--data", type=Path, default=DATA, help="../shared/data")
    ap.add_argument("--out", type=Path, default=ROOT / "viz/gallery")
    ap.add_argument("--work", type=Path, default=ROOT / "viz/out")
    ap.add_argument("--size", default="640x260")
    ap.add_argument("--num-points", type=int, default=2048,
                    help="points of the SemanticKITTI sub-cloud the model sees")
    ap.add_argument("--query", type=int, default=None)
    ap.add_argument("--backend", default="auto", choices=("auto", "open3d", "numpy"))
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    data = args.data.resolve()
    if not data.is_dir():
        print(f"no sample data at {data} (see ../shared/data/MANIFEST.md)",
              file=sys.stderr)
        return 2
    picked: list[Path] = []
    modelnet10_chair(args.chair_model, data, args.work, args.out, size, args.backend,
                     picked)
    if args.checkpoint.is_file():
        demo_checkpoint(args.checkpoint, args.work, args.out, size, args.backend,
                        picked)
    else:
        print(f"[gallery] no demo checkpoint at {args.checkpoint}: run `pointsam demo`"
              " first; skipping the demo figures", file=sys.stderr)
    kitti(data, args.work, args.out, size, args.backend, picked,
          args.lidar_checkpoint, args.num_points, args.query, args.untrained_probe)
    print(f"[gallery] {len(picked)} pictures in {args.out}:")
    for p in picked:
        print(f"  {p} ({p.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
