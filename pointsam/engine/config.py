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
from pathlib import Path
from typing import Any

import yaml

from .config_schema import Config, DataConfig, ModelConfig, OptimConfig, TrainConfig

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


def config_diff(old: dict[str, Any], new: dict[str, Any],
                free: frozenset[str] | set[str] = frozenset()
                ) -> list[tuple[str, Any, Any]]:
    """``(section.key, old value, new value)`` for every key of two config dicts
    (as :func:`config_to_dict` writes them) whose values differ, in sorted order;
    keys named in ``free`` are not compared.

    The resume checks of the trainer, the LiDAR recipe and ``pointsam sweep``
    use it, each with its own ``free`` set.

    Example:
        >>> config_diff({"train": {"lr": 0.1, "out_dir": "a"}},
        ...             {"train": {"lr": 0.2, "out_dir": "b"}}, {"train.out_dir"})
        [('train.lr', 0.1, 0.2)]
    """
    out = []
    for sec in sorted(set(old) | set(new)):
        a, b = old.get(sec) or {}, new.get(sec) or {}
        for k in sorted(set(a) | set(b)):
            key = f"{sec}.{k}"
            if key not in free and a.get(k) != b.get(k):
                out.append((key, a.get(k), b.get(k)))
    return out


def apply_overrides(d: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``key=value`` strings (value parsed as YAML) to a nested config dict.

    Example:
        >>> apply_overrides({}, ["train.epochs=5", "model.args.k=8"])
        {'train': {'epochs': 5}, 'model': {'args': {'k': 8}}}
    """
    d = copy.deepcopy(d)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) < 2:
            raise ConfigError(
                f"override key {key!r} must be section.key; valid keys: "
                f"{', '.join(valid_keys())}"
            )
        free = len(parts) > 2 and parts[0] in ("model", "data") and parts[1] == "args"
        if len(parts) > 2 and not free:
            raise ConfigError(
                f"unknown key {key!r}; valid keys: {', '.join(valid_keys())} "
                "(and model.args.*, data.args.*)"
            )
        set_dotted(d, parts, raw, item)
    return d


def set_dotted(d: dict[str, Any], parts: list[str], raw: str, item: str) -> None:
    """Set ``d[parts[0]]...[parts[-1]]`` to ``raw`` parsed as YAML (empty: None),
    creating mappings on the way; ``item`` (the override as given) names the
    problem in a :class:`ConfigError`.

    Example:
        >>> d = {}
        >>> set_dotted(d, ["data", "holdout", "below"], "-100", "data.holdout.below=-100")
        >>> d
        {'data': {'holdout': {'below': -100}}}
    """
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({e})") from e
    node = d
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {p!r} is not a mapping")
    node[parts[-1]] = value


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

