"""Pack a trained run into the model zoo: pointsam/pretrained/NAME.pt (+ card stub).

Usage:
  python train/pack_pretrained.py lidar runs/lidar_plain NAME
  python train/pack_pretrained.py trainer runs/modelnet10_pointnet2_lite_cbam NAME
The weights are stored without optimizer state, in float32 when that fits in
5 MB, else in float16. The model card NAME.md is written from the run's metrics
(training data and command, metrics, classes, expected input, data licence).
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
            "metrics": {"test_" + k: v for k, v in summ.get("test", {}).items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)},
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
    card = lidar_card(name, run, state) if kind == "lidar" else modelnet_card(
        name, run, state)
    path.with_suffix(".md").write_text(card)
    print(f"wrote {path.with_suffix('.md')}")


def lidar_card(name, run, state):
    m = json.loads((run / "metrics.json").read_text())
    t = m["test"]
    att = state["args"].get("attention") or "none (plain)"
    rows = "\n".join(
        f"| {c} | {t['support'][i]} | "
        + (f"{100 * t['iou'][i]:.1f} |" if t["support"][i] else "absent |")
        + (" never in training |" if c in m["never_in_training"] else " |")
        for i, c in enumerate(m["classes"]))
    conf = "; ".join(f"{c['true']} -> {c['pred']} {100 * c['share_of_true']:.0f}%"
                     for c in t["confusions"][:6])
    run_name = Path(m["config"]["train"]["out_dir"]).name  # runs/lidar_X
    cfg_name = "lidar/" + run_name.removeprefix("lidar_")  # train/lidar/X.yaml
    caveat = ("\nCaveat: this 1000-step config was written after the 300-step runs' "
              "000750 numbers were known\n(they all under-fitted their training crops); "
              "the shipped model was then picked among\nthe four runs by held-out val "
              "mIoU, not by 000750.\n" if run_name == "lidar_plain_long" else "")
    return f"""# {name}

LiDAR semantic segmentation into SemanticKITTI's 19 classes (learning-map train ids
0..18: car ... traffic-sign). `{state['model']}` (PointNet++ lite, kNN grouping),
attention: {att}; {m['params']:,} parameters; weights stored as
{next(iter(state['state_dict'].values())).dtype}.

## Use

    pointsam predict --model {name} scan.bin --out pred.ply
    pointsam viz --model {name} scan.bin --out viz_dir

(`pointsam viz` runs one forward pass over the raw points, without the 0.1 m voxels
and chunks that `predict` and the metrics below use, so its label picture is not the
model's prediction at its best; use `predict` for labels.)

```python
from pointsam.models import load_pretrained
model = load_pretrained("{name}")         # eval mode; model.pretrained = metadata
logits = model(pos=torch.from_numpy(xyz))  # [N, 19]; whole scans: predict_scan
```

## Input

- Columns: x, y, z in **metres**, z up (a KITTI `.bin` is float32 x, y, z,
  reflectance: the reflectance is read and ignored). Further columns are ignored.
- Frame: any. The model's only feature is the height above the local ground,
  computed inside it from xyz (4 m cells, 5% quantile, 3 x 3 minimum), and the
  network sees relative positions only; a sensor-frame `.bin` and a world-frame
  SemanticKITTI frame are read the same way.
- Whole scans: {state['config']['train']['voxel_size']} m voxels, chunks of at most
  {state['config']['train']['chunk_points']} voxels (`predict_scan`), every input point
  labelled. Densities like a Velodyne HDL-64E (KITTI); other sensors untested.

## Training data and command

One real SemanticKITTI frame (Open3D-ML demo data `000700`, 85,962 points, minus a
held-out region y < -106.6 m) plus {m['config']['data']['synthetic_scenes']} SyntheticLidar
scenes mapped onto SemanticKITTI classes; random 20 m cylinder crops, rotation about z,
scaling, flips, jitter; {m['steps_done']} steps of 2 crops ({m['train_seconds']:.0f} s on one
shared CPU thread).

    PYTHONPATH=. OMP_NUM_THREADS=1 python train/lidar.py train/{cfg_name}.yaml
    python train/pack_pretrained.py lidar runs/{run_name} {name}

Selection: best mIoU on the held-out region of 000700 (step {m['best_step']},
val mIoU {100 * m['val']['miou']:.1f}%).

## Metrics

Reported once on the real frame **000750** (never seen in training nor selection), every
one of its {t['points']:,} points: **mIoU {100 * t['miou']:.1f}%** over the
{len(t['present'])} classes present, **OA {100 * t['oa']:.1f}%**.
{caveat}
| class | points in 000750 | IoU % | |
|---|---:|---:|---|
{rows}

Largest confusions (true -> predicted, share of the true class): {conf}.

This is one training frame and one test frame: the numbers say what this model does on
a KITTI-like street, not a benchmark result. Classes never in training
({', '.join(m['never_in_training'])}) are never predicted correctly.

## Classes

{', '.join(f'{i} {c}' for i, c in enumerate(m['classes']))}

## Licence

Weights trained on SemanticKITTI data: **CC BY-NC-SA 4.0** (SemanticKITTI; KITTI is
CC BY-NC-SA 3.0). **Research / non-commercial use only**, attribution, share-alike.
Cite Behley et al., "SemanticKITTI", ICCV 2019, and Geiger et al., KITTI, CVPR 2012.
"""


def modelnet_card(name, run, state):
    summ = json.loads((run / "summary.json").read_text())
    test = summ["test"]
    return f"""# {name}

Object classification into the 10 ModelNet10 classes: `{state['model']}` (PointNet++
lite) with CBAM attention, {summ['num_parameters']:,} parameters.

## Use

    pointsam predict --model {name} shape.ply --out pred.ply    # also writes pred.json
    pointsam viz --model {name} shape.ply --out viz_dir

## Input

- Columns: x, y, z (any unit: the cloud is centred and scaled to the unit sphere),
  {state['config']['data']['num_points']} points sampled by farthest-point sampling.
- Frame: ModelNet's object frame (upright shapes, y or z up as in ModelNet10's OFF files);
  no rotation augmentation in training, so rotated objects are out of distribution.

## Training data and command

The full official ModelNet10 train split (3,991 shapes, 1024-point PCD files of
`molivas2022/modelNet10classifier`, Poisson-disk samples of the original meshes),
validation carved from it, test = the official 908 test shapes evaluated once.

    pointsam train train/modelnet10_pointnet2_lite_cbam.yaml
    python train/pack_pretrained.py trainer runs/modelnet10_pointnet2_lite_cbam {name}

## Metrics

Test (908 official test shapes, once): {', '.join(f'{k} {v:.4f}' for k, v in test.items() if isinstance(v, float))}.
Epochs: {summ['epochs_run']}, training {summ['train_time_s'] or 0:.0f} s.

## Classes

{', '.join(f'{i} {c}' for i, c in enumerate(state['classes']))}

## Licence

Trained on ModelNet (Princeton): **academic research only, non-commercial**. Cite
Wu et al., "3D ShapeNets", CVPR 2015.
"""


if __name__ == "__main__":
    pack(*sys.argv[1:4])
