"""Temporal attention of a TRAINED multi-scan model: a moving car next to a parked one.

Usage (after `pointsam train train/lidar/temporal_coarse.yaml`, or a sweep of it):

    PYTHONPATH=. python viz/render_temporal_gallery.py RUN_DIR [--scene I]

Writes ``viz/gallery/temporal_moving_vs_parked.png``: two top views of the same
test scene of SyntheticLidar (``moving_classes``, ``stopped_cars=0.5``; the
first test scene that holds both with at least 600 points each, so the car is
well visible), one around its largest driving car and one around its largest
car that stands still (parked, or stopped in its lane). The points of the newest scan are black, those of the previous
scans (registered into the newest scan's frame by the poses) orange (t-1) and
blue (t-2): a driving car leaves a trail, a parked car does not. The query is
the coarse centre nearest the car's centre (ringed); the model's temporal
attention weights of that query over the past encodings are drawn as circles
at the attended centres, coloured by scan, their area proportional to the
weight (numbers in the legend). Each panel's title gives the share of the
car's points that the model labels ``moving car``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SCAN_COLOURS = ["#111111", "#e8890c", "#1f6fd1", "#2ca02c", "#9467bd"]


def _objects(pos, y, label):
    """Connected groups of points of ``label`` (1.5 m single linkage on x, y)."""
    idx = (y == label).nonzero().view(-1).numpy()
    p = pos[idx, :2].numpy()
    groups, seen = [], np.zeros(len(idx), bool)
    for s in range(len(idx)):
        if seen[s]:
            continue
        todo, members = [s], []
        seen[s] = True
        while todo:
            i = todo.pop()
            members.append(i)
            near = np.nonzero((~seen) & (((p - p[i]) ** 2).sum(1) < 1.5**2))[0]
            seen[near] = True
            todo.extend(near.tolist())
        groups.append(idx[members])
    return [g for g in groups if len(g) >= 600]  # well visible, whatever its label


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--scene", type=int, default=None,
                    help="test scene index (default: the first with both kinds of car)")
    ap.add_argument("--out", type=Path,
                    default=ROOT / "viz" / "gallery" / "temporal_moving_vs_parked.png")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pointsam.engine.builders import build_dataset
    from pointsam.engine.predict import load_trained
    from pointsam.viz import capture, capture_inputs

    model, task, cfg, meta = load_trained(a.run / "best.pt")
    classes = list(meta["class_names"])
    car, moving = classes.index("car"), classes.index("moving car")
    ds = build_dataset(cfg, cfg.data.test_split)
    order = [a.scene] if a.scene is not None else range(len(ds))
    for i in order:
        d = ds[i]
        if "x" in d:
            del d.x
        cur = d.frame == 0
        p0, y0 = d.pos[cur], d.y[cur]
        mov, still = _objects(p0, y0, moving), _objects(p0, y0, car)
        if mov and still:
            break
    else:
        raise SystemExit("no test scene holds both a driving and a standing car")
    with torch.no_grad(), capture(model) as rec, capture_inputs(model) as inputs:
        logits = model(d)
    pred = logits.argmax(1)
    name = next(n for n in rec if rec[n].get("attn") is not None
                and "nbr_pos" in rec[n])
    r, li = rec[name], inputs[name]
    attn = r["attn"].float().mean(-1)  # [S, T k] head mean
    nbr_pos, nbr_frame = r["nbr_pos"], r["nbr_frame"].view(-1)  # [S, T k, 3], [T k]
    ok = r["nbr_mask"] if "nbr_mask" in r else torch.ones_like(attn, dtype=torch.bool)
    centres = li.pos  # [S, 3] in the model's centred frame
    shift = d.pos[cur].mean(0)  # the model centres the newest scan on its mean
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.6), dpi=110)
    largest = lambda groups: max(groups, key=len)  # noqa: E731  (a neutral pick)
    for ax, (group, kind) in zip(axes, [(largest(mov), "driving car"),
                                        (largest(still), "car standing still")]):
        c = p0[group].mean(0)
        q = int(((centres - (c - shift)) ** 2).sum(1).argmin())
        near = ((d.pos[:, :2] - c[:2]) ** 2).sum(1) < 7.0**2
        for tau in range(int(d.frame.max()), -1, -1):
            sel = near & (d.frame == tau)
            lab = "newest scan" if tau == 0 else f"scan t-{tau}"
            ax.scatter(d.pos[sel, 0], d.pos[sel, 1], s=1.5 if tau == 0 else 2.5,
                       c=SCAN_COLOURS[tau % len(SCAN_COLOURS)], alpha=0.9 if tau == 0
                       else 0.6, label=lab, linewidths=0)
        w = attn[q]
        for tau in range(1, int(nbr_frame.max()) + 1):
            cols = (nbr_frame == tau) & ok[q]
            pp = nbr_pos[q][cols] + shift  # [k', 3] back in the scene frame
            ax.scatter(pp[:, 0], pp[:, 1], s=3000 * w[cols].numpy() + 4,
                       facecolors="none", edgecolors=SCAN_COLOURS[tau], linewidths=2,
                       label=f"attended, scan t-{tau}: weight {float(w[cols].sum()):.2f}")
        qp = centres[q] + shift
        ax.scatter([qp[0]], [qp[1]], s=160, marker="o", facecolors="none",
                   edgecolors="#d62728", linewidths=2.5, label="query (coarse centre)")
        called = float((pred[group] == moving).float().mean())
        ax.set_title(f"{kind} ({len(group)} points): {100 * called:.0f}% of them "
                     "labelled 'moving car'", fontsize=10)
        ax.set_xlim(float(c[0]) - 7, float(c[0]) + 7)
        ax.set_ylim(float(c[1]) - 7, float(c[1]) + 7)
        ax.set_aspect("equal")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.legend(loc="lower left", fontsize=7, markerscale=1.0, framealpha=0.85)
    fig.suptitle(f"Temporal attention of a trained {cfg.model.name} "
                 f"({cfg.model.args.get('placement', 'coarse')}, num_past="
                 f"{cfg.model.args.get('num_past')}), SyntheticLidar test scene {i}, "
                 "top view", fontsize=11)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out)
    print(a.out)


if __name__ == "__main__":
    main()
