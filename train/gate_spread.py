"""How much a trained CBAM point gate gates: its values over real test shapes.

    python train/gate_spread.py RUN_DIR/best.pt [--model NAME] [--every 4]

Runs the model over every ``--every``-th ModelNet10 test shape (the run's own
evaluation transform), records each PointGate's per-point weight m (the value
the viewer shows) and prints, per gate, its 5 / 50 / 95% quantiles, the share
of points with m < 0.9, and the accuracy on those shapes (issue 24, section 5).
"""

import argparse
from pathlib import Path

import torch
from torch_geometric.data import Batch

from pointsam.data import ModelNet
from pointsam.engine.builders import build_transform
from pointsam.nn import record_attention

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?")
    p.add_argument("--model")
    p.add_argument("--every", type=int, default=4)
    p.add_argument("--data", type=Path, default=DATA / "modelnet10_pcd_1024")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.model:
        from pointsam.engine.pretrained import load_pretrained_trained

        model, _, cfg, _ = load_pretrained_trained(args.model)
    else:
        from pointsam.engine.predict import load_trained

        model, _, cfg, _ = load_trained(args.checkpoint)
    ds = ModelNet(root=args.data, name="10", split="test")
    t = build_transform(cfg, train=False)
    gates: dict[str, list[torch.Tensor]] = {}
    right = n = 0
    with torch.no_grad():
        for i in range(0, len(ds), args.every):
            d = ds[i]
            y = int(d.y)
            d = t(d)
            with record_attention(model) as rec:
                logits = model(Batch.from_data_list([d]))
            right += int(logits.argmax(-1)) == y
            n += 1
            for name, w in rec.items():
                if "point" in w and not name.endswith("attn"):
                    gates.setdefault(name, []).append(w["point"].flatten())
    print(f"{n} test shapes, accuracy {100 * right / n:.1f}%")
    print("| gate | m 5% | m 50% | m 95% | share m < 0.9 |")
    print("|---|---:|---:|---:|---:|")
    for name, ws in gates.items():
        m = torch.cat(ws).double()
        q = torch.quantile(m, torch.tensor([0.05, 0.5, 0.95], dtype=m.dtype))
        print(f"| {name} | {q[0]:.4f} | {q[1]:.4f} | {q[2]:.4f} | "
              f"{100 * float((m < 0.9).double().mean()):.1f}% |")


if __name__ == "__main__":
    main()
