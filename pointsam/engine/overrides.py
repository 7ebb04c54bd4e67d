r"""``key=value`` overrides of a config dict and the comparison of two configs
(re-exported by :mod:`pointsam.engine.config`)."""

from __future__ import annotations

import copy
from typing import Any

import yaml

from .config import ConfigError, valid_keys

__all__ = ["apply_overrides", "set_dotted", "config_diff"]


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
