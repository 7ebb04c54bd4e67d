"""Measure the HTML viewer on a real LiDAR scan: file size and time to first paint.

Usage (from the repository root; needs Chromium)::

    python viz/measure_viewer.py                       # KITTI 004139, every point
    python viz/measure_viewer.py --max-points 30000    # with a display subsample
    python viz/measure_viewer.py --checkpoint CK --source CLOUD --screenshot viz/gallery/viewer.png

Without ``--checkpoint`` the scan goes through the untrained probe of
``render_gallery.py`` (local-global + axial attention, fixed seed): the page
then holds neighbour, axial-tube and token tables and LAFF/axis maps for every
point, as a LiDAR model's would. With a checkpoint (``pointsam viz``'s loader)
the model's own maps are shown.

Prints: points, maps, file size, Python time to write the page, and in
headless Chromium (SwiftShader WebGL, no GPU) the time from navigation to the
viewer's first paint (``performance.now()`` when the first draw has been
presented), median of ``--repeat`` loads, plus console errors (must be none).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SCAN = ROOT / ".." / "shared" / "data" / "kitti_object_sample" / "training" / \
    "velodyne" / "004139.bin"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, default=SCAN, help="a cloud file")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "viz/out/viewer_kitti.html")
    ap.add_argument("--max-points", type=int, default=None,
                    help="display subsample (default: every point)")
    ap.add_argument("--num-points", type=int, default=None,
                    help="with --checkpoint: points the model sees")
    ap.add_argument("--map", default=None, help="the map to open (id), in the hash")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", default="1400x800", help="browser window WIDTHxHEIGHT")
    ap.add_argument("--screenshot", type=Path, default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from pointsam.viz import to_html
    from pointsam.viz.chromium import Browser, find_chromium

    t0 = time.perf_counter()
    if args.checkpoint is not None:
        from pointsam.cli.viz import load_source
        from pointsam.engine.predict import load_trained

        model, _, cfg, meta = load_trained(args.checkpoint)
        data = load_source(str(args.source), cfg, args.num_points)
        names = meta.get("class_names") or None
        title = f"{args.checkpoint.parent.name} on {args.source.name}"
    else:
        from torch_geometric.data import Data

        from pointsam.data import read_cloud

        sys.path.insert(0, str(ROOT / "viz"))
        from render_gallery import AttentionProbe

        cloud = read_cloud(args.source)
        data = Data(pos=cloud.pos - cloud.pos.mean(0))
        torch.manual_seed(0)
        model = AttentionProbe().eval()
        names = None
        title = f"{args.source.name}: local-global + axial attention (untrained probe)"
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    extra = {} if args.checkpoint is not None else {"pred": None}  # untrained
    page = to_html(model, data, args.out, max_points=args.max_points,
                   class_names=names, title=title, **extra)
    t_html = time.perf_counter() - t0
    mb = page.stat().st_size / 2**20
    print(f"cloud: {data.pos.size(0):,} points ({args.source})")
    print(f"page: {page} {mb:.1f} MiB, written in {t_html:.1f} s "
          f"(model load + read {t_load:.1f} s)")
    if find_chromium() is None:
        print("no Chromium: skipping the browser measurement", file=sys.stderr)
        return 0
    w, h = (int(v) for v in args.size.split("x"))
    paints, walls = [], []
    for _ in range(args.repeat):
        with Browser(w, h, timeout=300) as b:
            wall = b.open(page, ready="window.pointsamViewer && pointsamViewer.ready",
                          hash=f"map={args.map}" if args.map else "")
            paints.append(b.eval("pointsamViewer.firstPaintMs") / 1000)
            timing = b.eval("pointsamViewer.timing")
            walls.append(wall)
            n_maps = b.eval("pointsamViewer.scene.maps.length")
            switch = b.eval("""(async () => { const V = pointsamViewer, t = [];
              for (let m = 0; m < V.scene.maps.length; m++) {
                const t0 = performance.now(); V.state.map = m; await V.render();
                t.push(performance.now() - t0); }
              V.state.map = V.scene.default_map; await V.render();
              return t; })()""")
            notes = b.eval("pointsamViewer.scene.notes")
            if args.screenshot is not None:
                time.sleep(0.5)
                b.screenshot(args.screenshot)
            errors = list(b.errors)
    print(f"maps: {n_maps}; notes on the page: {notes}")
    print(f"first paint (navigation -> first draw presented), median of "
          f"{args.repeat}: {statistics.median(paints):.2f} s "
          f"(all: {', '.join(f'{p:.2f}' for p in paints)}); wall time to ready "
          f"{statistics.median(walls):.2f} s")
    print(f"  of which (last load): page read + plotly.js parsed at "
          f"{timing['scriptStartMs'] / 1000:.2f} s, scene JSON parsed at "
          f"{timing['sceneParsedMs'] / 1000:.2f} s, then decoding and the first draw")
    print(f"switching maps (each map once, last load): median "
          f"{statistics.median(switch) / 1000:.2f} s, max {max(switch) / 1000:.2f} s")
    print(f"console errors: {errors or 'none'}")
    if args.screenshot is not None:
        print(f"screenshot: {args.screenshot}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
