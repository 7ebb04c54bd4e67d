"""Pack a trained run into the model zoo: pointsam/pretrained/NAME.pt (+ card stub).

Usage:
  python train/pack_pretrained.py lidar runs/lidar_plain NAME
  python train/pack_pretrained.py trainer runs/modelnet10_pointnet2_lite_cbam NAME
The weights are stored without optimizer state, in float32 when that fits in
5 MB, else in float16. The model card (NAME.md) is written by hand from the
run's metrics; this script prints the numbers it needs.
"""

import json
import sys
from pathlib import Path

import torch

from pointsam.data.kitti import semantic_kitti_config
from pointsam.models.pretrained import FORMAT, MAX_BYTES

OUT = Path(__file__).resolve().parents[1] / "pointsam" / "pretrained"


def kitti_colors(names):
    cfg = semantic_kitti_config()
    inv = cfg["learning_map_inv"]
    return [[c / 255 for c in reversed(cfg["color_map"][inv[i + 1]])]  # BGR -> RGB
            for i in range(len(names))]


def pack(kind, run, name):
    run = Path(run)
    ck = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    if kind == "lidar":
        m = json.loads((run / "metrics.json").read_text())
        state = {
            "model": ck["model"], "args": ck["args"], "state_dict": ck["state_dict"],
            "task": "semseg", "classes": ck["classes"],
            "colors": kitti_colors(ck["classes"]),
            "config": {"data": {"name": "semantickitti", "num_points": 8192},
                       "train": {"voxel_size": ck["inference"]["voxel_size"],
                                 "chunk_points": ck["inference"]["chunk_points"]}},
            "input": {"columns": "x y z (further columns such as intensity ignored)",
                      "units": "metres", "frame": "any (sensor or world frame); z up",
                      "feature": "height above the local ground, computed inside"},
            "metrics": {"test_frame": "SemanticKITTI 000750 (Open3D-ML demo), every point",
                        "test_miou": round(m["test"]["miou"], 4),
                        "test_oa": round(m["test"]["oa"], 4),
                        "val_miou": round(m["val"]["miou"], 4)},
        }
    else:
        meta = ck["meta"]
        summ = json.loads((run / "summary.json").read_text())
        state = {
            "model": meta["model_name"], "args": meta["model_args"],
            "state_dict": ck["model"], "task": meta["task"],
            "classes": meta["class_names"], "colors": None,
            "config": {"data": {"name": "modelnet10",
                                "num_points": summ["config"]["data"]["num_points"]}},
            "input": {"columns": "x y z", "units": "any (normalised to the unit sphere)",
                      "frame": "object frame, z or y up as ModelNet"},
            "metrics": {k: v for k, v in summ.get("results", {}).items()
                        if isinstance(v, (int, float))},
        }
    state.update(format=FORMAT, version=1, name=name)
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.pt"
    torch.save(state, path)
    if path.stat().st_size > MAX_BYTES:
        state["state_dict"] = {k: v.half() if v.is_floating_point() else v
                               for k, v in state["state_dict"].items()}
        torch.save(state, path)
    size = path.stat().st_size
    assert size <= MAX_BYTES, f"{path} is {size} bytes > 5 MB"
    print(f"wrote {path} ({size / 1e6:.2f} MB)")
    print(json.dumps({k: v for k, v in state.items() if k not in ("state_dict",)},
                     indent=1)[:3000])


if __name__ == "__main__":
    pack(*sys.argv[1:4])
