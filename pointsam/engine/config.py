r"""Typed training configuration, loaded from YAML with ``key=value`` overrides.

A config file in ``train/`` lists only what differs from the defaults below, in
four sections (``model``, ``data``, ``optim``, ``train``)::

    model: {name: pointnet2_lite_cls, args: {attention: cbam}}
    data: {name: modelnet10, root: ../shared/data/modelnet10_pcd_1024, num_points: 512}
    train: {epochs: 30, out_dir: runs/mn10_pn2_cbam}

``pointsam train CONFIG --set train.epochs=5 --set model.args.attention=cbam`` overrides a
value (parsed as YAML, so ``5`` is an int and ``[1, 2]`` a list). An unknown key
or a bad value raises :class:`ConfigError` listing the valid keys or values.
``model.args`` and ``data.args`` are free dicts passed as keyword arguments to
``create_model`` and to the dataset class, which check them.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "ModelConfig",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "Config",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "valid_keys",
]

TASKS = ("cls", "partseg", "semseg")


class ConfigError(ValueError):
    """A config file or override names an unknown key or holds a bad value."""


@dataclass
class ModelConfig:
    """Which model to build: ``create_model(name, **args)``.

    Attributes:
        name: A registered model name (``pointsam.models.list_models()``).
        args: Keyword overrides for the model factory (``attention``, ``k``, ...).
            ``num_classes`` (and ``num_parts``/``num_categories`` for part
            segmentation) are filled from the dataset when not given.
    """

    name: str = "pointnet2_lite_cls"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    """Which dataset and how it is batched.

    Attributes:
        name: One of ``modelnet10``, ``modelnet40``, ``shapenetpart``,
            ``semantickitti``, ``synthetic_shapes``, ``synthetic_parts``,
            ``synthetic_lidar``, ``lidar_frames`` (labelled LiDAR frames:
            crops to train, a held-out region to validate, whole frames to
            test; :class:`~pointsam.data.LidarFrames`).
        root: Dataset folder (``None``: the class's default / ``POINTSAM_DATA``).
        args: Extra keyword arguments for the dataset class.
        num_points: Points per sample after fixed-size sampling (0 keeps all).
        augment: Random rotation about z, scaling and jitter in training.
        val_fraction: Share of the train split carved out for model selection.
        split_seed: Seed of that carve-out (fixed, so every run agrees).
        batch_size: Global batch size (divided over DDP ranks).
        eval_batch_size: Batch size at evaluation (default: ``batch_size``).
        num_workers: DataLoader worker processes.
        test_split: The split evaluated once at the end.
        cache: Keep loaded / generated samples in memory (before augmentation).
    """

    name: str = "synthetic_shapes"
    root: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    num_points: int = 1024
    augment: bool = True
    val_fraction: float = 0.1
    split_seed: int = 0
    batch_size: int = 16
    eval_batch_size: int | None = None
    num_workers: int = 0
    test_split: str = "test"
    cache: bool = True


@dataclass
class OptimConfig:
    r"""Optimiser, learning-rate schedule and loss options.

    Attributes:
        name: ``adamw``, ``adam`` or ``sgd``.
        lr: Peak learning rate.
        weight_decay: Decoupled (AdamW) or L2 weight decay.
        momentum: SGD momentum.
        scheduler: ``cosine`` (to ``min_lr`` over all epochs, or all steps with
            ``train.steps``), ``step`` or ``none``.
        warmup: Linear warm-up length before the scheduler, in epochs (in steps
            with ``train.steps``): the rate rises from ``lr / warmup`` to ``lr``
            (torch's ``LinearLR`` then the scheduler, in ``SequentialLR``).
            (0: none)
        step_size: Epochs between decays for ``step``.
        gamma: Decay factor for ``step``.
        min_lr: Final learning rate for ``cosine``.
        grad_clip: Max gradient norm (0: off).
        label_smoothing: Cross-entropy label smoothing.
        class_weights: Semantic segmentation's loss weights: ``none``, or
            ``inverse_sqrt``: :math:`w_c \propto n_c^{-1/2}` over the labelled
            points :math:`n_c` of the train split (the dataset's
            ``class_counts()``), mean 1 over the classes seen, at most 10, 0 for
            a class never seen.
    """

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: str = "cosine"
    step_size: int = 20
    gamma: float = 0.5
    min_lr: float = 1e-5
    grad_clip: float = 0.0
    label_smoothing: float = 0.0
    warmup: int = 0
    class_weights: str = "none"


@dataclass
class TrainConfig:
    """The run itself.

    Attributes:
        task: ``cls``, ``partseg`` or ``semseg`` (default: from the dataset).
        epochs: Training epochs.
        steps: Train for this many optimiser steps instead of epochs (0: use
            ``epochs``; setting both is an error). The train split is drawn as
            one endless shuffled stream (a new order per pass, a function of the
            seed), ``eval_every`` counts steps between validations, the schedule
            steps once per step, and a resume continues at the exact step.
        seed: Seed of weights, shuffling and augmentation.
        out_dir: Where checkpoints, logs and the summary go.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        amp: Automatic mixed precision (CUDA only; ignored on the CPU).
        max_batches: Batches per epoch and per evaluation (0: all); for smoke runs.
        eval_every: Validate every this many epochs (steps with ``steps``), and
            after the last.
        votes: Test-time augmentation passes at the final test evaluation.
        ignore_index: Label ignored by the semantic-segmentation loss and metrics.
        voxel_size: Whole-scan semseg evaluation: voxel edge in metres (0: off).
        chunk_points: Whole-scan semseg evaluation: max points per chunk (0: off).
        time_budget_s: Training-time budget in seconds (0: off): no epoch starts
            when the time so far plus the mean epoch time so far would exceed
            it (the first always runs). Counts training, validation and
            checkpoints, summed over resumes; selection stays on validation and
            the test split is evaluated once. For equal-compute comparisons.
        num_threads: torch intra-op threads (0: torch's default). On a busy
            shared CPU, 1 thread avoids OpenMP spin contention (often 5x faster).
        progress: Show a tqdm bar per epoch.
        tensorboard: Write TensorBoard scalars.
    """

    task: str | None = None
    epochs: int = 10
    steps: int = 0
    seed: int = 0
    out_dir: str = "runs/default"
    device: str = "auto"
    amp: bool = True
    max_batches: int = 0
    eval_every: int = 1
    votes: int = 1
    ignore_index: int = -1
    voxel_size: float = 0.0
    chunk_points: int = 0
    time_budget_s: float = 0.0
    num_threads: int = 0
    progress: bool = True
    tensorboard: bool = True


@dataclass
class Config:
    """A whole training config (see the module docstring)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


#: Values allowed for string options, checked after every load.
CHOICES: dict[str, tuple[str, ...]] = {
    "data.name": (
        "modelnet10",
        "modelnet40",
        "shapenetpart",
        "semantickitti",
        "synthetic_shapes",
        "synthetic_parts",
        "synthetic_lidar",
        "lidar_frames",
    ),
    "optim.name": ("adamw", "adam", "sgd"),
    "optim.scheduler": ("cosine", "step", "none"),
    "optim.class_weights": ("none", "inverse_sqrt"),
    "train.task": TASKS,
    "train.device": ("auto", "cpu", "cuda"),
}

_SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def valid_keys() -> list[str]:
    """Every dotted key a config may set (``model.args.*`` and ``data.args.*`` free).

    Example:
        >>> "train.epochs" in valid_keys()
        True
    """
    keys = []
    for sec, cls in _hints(Config).items():
        keys += [f"{sec}.{k}" for k in _hints(cls)]
    return keys


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp``; int -> float is allowed."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: expected {tp}, got {value!r}")
    if tp is Any:
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return list(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads "1e-3" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")  # pragma: no cover


def _validate(cfg: Config) -> None:
    for key, allowed in CHOICES.items():
        sec, name = key.split(".")
        value = getattr(getattr(cfg, sec), name)
        if value is not None and value not in allowed:
            raise ConfigError(
                f"{key}: bad value {value!r}; valid values: {', '.join(allowed)}"
            )
    positive = ["train.epochs", "data.batch_size", "train.eval_every", "train.votes"]
    for key in positive:
        sec, name = key.split(".")
        if getattr(getattr(cfg, sec), name) < 1:
            raise ConfigError(
                f"{key} must be >= 1, got {getattr(getattr(cfg, sec), name)}"
            )
    nonneg = [
        "data.num_points",
        "data.num_workers",
        "train.max_batches",
        "train.chunk_points",
        "train.voxel_size",
        "train.time_budget_s",
        "train.num_threads",
        "train.steps",
        "optim.warmup",
        "optim.lr",
        "optim.grad_clip",
    ]
    for key in nonneg:
        sec, name = key.split(".")
        if getattr(getattr(cfg, sec), name) < 0:
            raise ConfigError(
                f"{key} must be >= 0, got {getattr(getattr(cfg, sec), name)}"
            )
    for key in ("optim.weight_decay", "optim.momentum", "optim.min_lr"):
        sec, name = key.split(".")
        if getattr(getattr(cfg, sec), name) < 0:
            raise ConfigError(
                f"{key} must be >= 0, got {getattr(getattr(cfg, sec), name)}"
            )
    if cfg.optim.step_size < 1:
        raise ConfigError(f"optim.step_size must be >= 1, got {cfg.optim.step_size}")
    if not 0.0 < cfg.optim.gamma <= 1.0:
        raise ConfigError(f"optim.gamma must be in (0, 1], got {cfg.optim.gamma}")
    if not 0.0 <= cfg.optim.label_smoothing < 1.0:
        raise ConfigError(
            f"optim.label_smoothing must be in [0, 1), got {cfg.optim.label_smoothing}"
        )
    if not 0.0 <= cfg.data.val_fraction < 1.0:
        raise ConfigError(
            f"data.val_fraction must be in [0, 1), got {cfg.data.val_fraction}"
        )
    if cfg.train.votes > 1 and (cfg.train.voxel_size > 0 or cfg.train.chunk_points > 0):
        raise ConfigError(
            f"train.votes={cfg.train.votes} with train.voxel_size/chunk_points: "
            "whole-scan evaluation has no test-time augmentation; use votes 1")
    if cfg.data.eval_batch_size is not None and cfg.data.eval_batch_size < 1:
        raise ConfigError("data.eval_batch_size must be >= 1")
    length = cfg.train.steps or cfg.train.epochs
    if cfg.optim.warmup >= length:
        unit = "train.steps" if cfg.train.steps else "train.epochs"
        raise ConfigError(f"optim.warmup={cfg.optim.warmup} must be shorter than "
                          f"{unit}={length}")


def config_from_dict(d: dict[str, Any] | None) -> Config:
    """Build a :class:`Config` from a nested dict, checking every key and value.

    Example:
        >>> config_from_dict({"train": {"epochs": 3}}).train.epochs
        3
        >>> try:
        ...     config_from_dict({"train": {"epoch": 3}})
        ... except ConfigError as e:
        ...     print(e)
        unknown key 'train.epoch'; valid keys in 'train': task, epochs, ...
    """
    d = {} if d is None else d
    if not isinstance(d, dict):
        raise ConfigError(
            f"a config must be a mapping of sections, got {type(d).__name__}"
        )
    sections = _hints(Config)
    kwargs = {}
    for sec, body in d.items():
        if sec not in sections:
            raise ConfigError(
                f"unknown section {sec!r}; valid sections: {', '.join(sections)}"
            )
        cls = sections[sec]
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise ConfigError(f"section {sec!r} must be a mapping, got {body!r}")
        hints = _hints(cls)
        vals = {}
        for k, v in body.items():
            if k not in hints:
                raise ConfigError(
                    f"unknown key '{sec}.{k}'; valid keys in '{sec}': "
                    f"{', '.join(hints)}"
                )
            vals[k] = _coerce(v, hints[k], f"{sec}.{k}")
        kwargs[sec] = cls(**vals)
    cfg = Config(**kwargs)
    _validate(cfg)
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict of ``cfg`` (YAML/JSON-safe, storable in a checkpoint)."""
    return copy.deepcopy(dataclasses.asdict(cfg))


def _check_one_length(d: dict[str, Any]) -> None:
    """A config file (with its overrides) sets ``train.steps`` or
    ``train.epochs``, not both (a stored config holds both: the default is kept)."""
    train = d.get("train") or {}
    if isinstance(train, dict) and train.get("steps") and "epochs" in train:
        raise ConfigError(
            f"train.steps={train['steps']} and train.epochs={train['epochs']} are "
            "both set: a run is measured in one of them; keep train.steps (with "
            "train.eval_every in steps) or train.epochs, not both")


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) plus overrides.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConfigError: an empty file, an unknown key or a bad value.
    """
    d: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            d = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from e
        if d is None or d == {}:
            raise ConfigError(
                f"{path} is empty: a config names at least the model, the data and "
                "train.out_dir (see the examples in train/); without one, nothing "
                "would say what is trained or where it goes")
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: a config must be a mapping of sections")
    try:
        d = apply_overrides(d, overrides)
        _check_one_length(d)
        return config_from_dict(d)
    except ConfigError as e:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{e}") from None


# override and comparison helpers (overrides.py imports from this module)
from .overrides import apply_overrides, config_diff, set_dotted  # noqa: E402,F401
