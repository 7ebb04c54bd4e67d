"""Run a tiny classification training; under torchrun it is a DDP run.

Usage: python _ddp_run.py OUT_DIR   (or torchrun --nproc_per_node=2 _ddp_run.py OUT_DIR)
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tiny import TinyNet, TinyShapes  # noqa: E402

from pointsam.engine.config import config_from_dict  # noqa: E402
from pointsam.engine.distributed import cleanup_distributed  # noqa: E402
from pointsam.engine.tasks import ClsTask  # noqa: E402
from pointsam.engine.trainer import Trainer  # noqa: E402


def run(out: str) -> None:
    torch.manual_seed(0)
    model = TinyNet(3, dropout=0.0)
    ds = {
        "train": TinyShapes(24, seed=1),
        "val": TinyShapes(6, seed=2),
        "test": TinyShapes(9, seed=3),
    }
    cfg = config_from_dict(
        {
            "train": {
                "epochs": 2,
                "out_dir": out,
                "progress": False,
                "task": "cls",
                "tensorboard": False,
                "device": "cpu",
            },
            "data": {"batch_size": 8},
            "optim": {"lr": 0.01},
        }
    )
    try:
        Trainer(cfg, model=model, datasets=ds, task=ClsTask(3)).fit()
    finally:
        cleanup_distributed()


if __name__ == "__main__":
    torch.set_num_threads(1)
    run(sys.argv[1])
