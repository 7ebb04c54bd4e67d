r"""Training, evaluation, metrics, checkpoints and distributed runs.

- :mod:`~pointsam.engine.config`: typed config dataclasses, YAML + ``key=value``.
- :mod:`~pointsam.engine.metrics`: OA/mAcc/confusion, ShapeNetPart mIoU, semseg IoU.
- :mod:`~pointsam.engine.checkpoint`: atomic, ``weights_only`` checkpoints.
- :mod:`~pointsam.engine.builders`: datasets, transforms, task and model of a config.
- :mod:`~pointsam.engine.trainer`: :class:`Trainer` (fit, validate, test once).
- :mod:`~pointsam.engine.evaluation`: :func:`evaluate` (loss, metrics, votes).
- :mod:`~pointsam.engine.distributed`: DDP under ``torchrun``.
- :mod:`~pointsam.engine.inference`: whole-scan chunked / voxel inference.
"""

from pointsam.data import split_train_val  # its home is the data package

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import Config, ConfigError, config_from_dict, config_to_dict, load_config
from .evaluation import evaluate
from .inference import predict_scan
from .metrics import ClsMetrics, PartSegMetrics, SemSegMetrics
from .tasks import ClsTask, PartSegTask, SemSegTask
from .trainer import Trainer

__all__ = [
    "Config",
    "ConfigError",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "ClsMetrics",
    "PartSegMetrics",
    "SemSegMetrics",
    "ClsTask",
    "PartSegTask",
    "SemSegTask",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "predict_scan",
    "Trainer",
    "evaluate",
    "split_train_val",
]
