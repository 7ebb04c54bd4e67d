r"""Build the datasets, task and model a :class:`~pointsam.engine.config.Config` names.

``data.name`` maps to a class of :mod:`pointsam.data` (:data:`DATASETS`, a small
fixed table of the classes themselves, not a registry); ``model.name`` goes to
:func:`pointsam.models.create_model`, with ``num_classes`` (and the
part-segmentation sizes) filled from the dataset unless ``model.args`` sets them;
:func:`build_model` returns the model together with the arguments it was built
with (:class:`BuiltModel`), which the trainer stores in its checkpoints.

Each split is loaded once without a transform and wrapped by
:class:`TransformedDataset`: the train part gets the training transform
(normalise, fixed-size sampling, augmentation), the validation carve-out and the
test split the deterministic evaluation transform.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from torch import nn
from torch.utils.data import Dataset

from pointsam import data as D
from pointsam.data import split_train_val
from pointsam.data import transforms as T
from pointsam.models import create_model

from .config import Config, ConfigError
from .tasks import ClsTask, PartSegTask, SemSegTask, Task, class_weights

__all__ = [
    "BuiltModel",
    "DATASETS",
    "DEFAULT_TASK",
    "TransformedDataset",
    "build_dataset",
    "build_datasets",
    "build_transform",
    "build_task",
    "build_model",
    "dataset_info",
]

#: ``data.name`` -> (dataset class of :mod:`pointsam.data`, fixed keyword arguments)
DATASETS: dict[str, tuple[type, dict[str, Any]]] = {
    "modelnet10": (D.ModelNet, {"name": "10"}),
    "modelnet40": (D.ModelNet, {"name": "40"}),
    "shapenetpart": (D.ShapeNetPart, {}),
    "semantickitti": (D.SemanticKITTI, {}),
    "synthetic_shapes": (D.SyntheticShapes, {}),
    "synthetic_parts": (D.SyntheticParts, {}),
    "synthetic_lidar": (D.SyntheticLidar, {}),
    "lidar_frames": (D.LidarFrames, {}),
}

DEFAULT_TASK: dict[str, str] = {
    "modelnet10": "cls",
    "modelnet40": "cls",
    "synthetic_shapes": "cls",
    "shapenetpart": "partseg",
    "synthetic_parts": "partseg",
    "semantickitti": "semseg",
    "synthetic_lidar": "semseg",
    "lidar_frames": "semseg",
}


class TransformedDataset(Dataset):
    """``base[indices[i]]`` passed through ``transform`` (a copy, base untouched).

    Args:
        base: Any indexable dataset of PyG ``Data``.
        indices: Which items (default: all).
        transform: Callable ``Data -> Data`` or ``None``.
        cache: Keep the untransformed samples in memory after the first access
            (synthetic sets are generated on access; files are parsed once).

    ``drop_features = True`` (set by the trainer for a model built without input
    features) removes ``x`` from every sample.
    """

    drop_features = False

    def __init__(
        self,
        base: Any,
        indices: list[int] | None = None,
        transform: Callable[[Any], Any] | None = None,
        *,
        cache: bool = False,
    ) -> None:
        self.base = base
        self.indices = list(range(len(base))) if indices is None else list(indices)
        self.transform = transform
        self._cache: dict[int, Any] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        j = self.indices[i]
        if self._cache is not None:
            if j not in self._cache:
                self._cache[j] = self.base[j]
            data = self._cache[j].clone()
        else:
            data = self.base[j].clone()
        if self.transform is not None:
            data = self.transform(data)
        if self.drop_features and "x" in data:
            del data.x
        return data

    def class_counts(self) -> Any:
        """Labelled points per class of these items [C]: the base set's own count
        when it counts (and these are all its items), else read item by item,
        untransformed (of a multi-scan sample, the newest scan's points, the
        ones a segmentation task scores); ``None`` for a set without
        ``num_classes`` or per-point ``y``."""
        import torch

        everything = self.indices == list(range(len(self.base)))
        own = getattr(self.base, "class_counts", None)
        counts = own() if everything and callable(own) else None
        if counts is not None:
            return counts
        num = getattr(self.base, "num_classes", None)
        if not isinstance(num, int):
            return None
        total = torch.zeros(num, dtype=torch.long)
        for j in self.indices:
            d = self.base[j]
            y = getattr(d, "y", None)
            if y is None or y.numel() != d.num_nodes:
                return None  # not per-point labels
            y = y.view(-1)
            frame = getattr(d, "frame", None)
            if frame is not None:
                y = y[frame.view(-1) == 0]  # [N_0] scored points
            total += torch.bincount(y[y >= 0], minlength=num)[:num]
        return total

    def __getattr__(self, name: str) -> Any:  # class names etc. of the base set
        if name in ("base", "indices", "transform", "_cache"):
            raise AttributeError(name)
        return getattr(self.base, name)


def build_transform(cfg: Config, *, train: bool) -> Callable[[Any], Any] | None:
    """Normalise (objects) + fixed-size sampling (+ augmentation in training).

    Training samples ``data.num_points`` at random and augments with an
    anisotropic scale in [0.8, 1.25], a shift of up to 0.1 and a clipped jitter
    (global RNG: restored on resume). Evaluation samples by farthest-point
    sampling from the canonical start, so it is deterministic; semantic
    segmentation with ``train.voxel_size`` or ``train.chunk_points`` evaluates
    every point of each scan instead (whole-scan inference).
    """
    d = cfg.data
    steps: list[Any] = []
    task = cfg.train.task or DEFAULT_TASK.get(d.name, "cls")
    if task != "semseg":
        steps.append(T.NormalizeScale())
    whole_scan = task == "semseg" and (
        cfg.train.voxel_size > 0 or cfg.train.chunk_points > 0
    )
    if d.num_points > 0 and (train or not whole_scan):
        steps.append(T.FixedPoints(d.num_points, method="random" if train else "fps"))
    if train and d.augment:
        steps += [T.RandomScale(0.8, 1.25), T.RandomShift(0.1), T.Jitter(0.01, 0.05)]
    return T.Compose(steps) if steps else None


def build_dataset(cfg: Config, split: str) -> Any:
    """The raw ``split`` of ``cfg.data.name`` (no transform).

    The class declares the splits it takes (:attr:`PointDataset.splits`); a
    ``split`` it does not take is a :class:`ConfigError` naming them.
    """
    d = cfg.data
    if d.name not in DATASETS:
        raise ConfigError(f"unknown dataset {d.name!r}; known: {', '.join(DATASETS)}")
    cls, fixed = DATASETS[d.name]
    if split not in cls.splits:
        raise ConfigError(f"{cls.__name__} has no split {split!r} (data.test_split?); "
                          f"its splits: {', '.join(cls.splits)}")
    kwargs = {**fixed, **d.args, "split": split}
    if d.root is not None:
        kwargs["root"] = d.root
    try:
        return cls(**kwargs)
    except TypeError as e:  # a data.args key the class does not take
        if "argument" not in str(e):
            raise
        import inspect  # only to list the valid names in the message

        params = inspect.signature(cls).parameters
        valid = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY,
                                                             p.POSITIONAL_OR_KEYWORD)]
        raise ConfigError(f"data.args for {cls.__name__}: {e}; it takes "
                          f"{', '.join(valid)}") from None


def build_datasets(cfg: Config) -> dict[str, Dataset]:
    """``{"train", "val", "test"}``: val is the dataset's own validation split
    when its class declares one (:attr:`PointDataset.val_split`), else carved
    from train with ``data.split_seed``."""
    train_base = build_dataset(cfg, "train")
    eval_t = build_transform(cfg, train=False)
    c = cfg.data.cache
    if train_base.val_split is not None:  # the dataset's own validation split
        out: dict[str, Dataset] = {
            "train": TransformedDataset(train_base, None,
                                        build_transform(cfg, train=True), cache=c),
            "val": TransformedDataset(build_dataset(cfg, train_base.val_split), None,
                                      eval_t, cache=c),
        }
    else:  # carved out of train with a fixed seed
        tr, va = split_train_val(
            len(train_base), cfg.data.val_fraction, cfg.data.split_seed
        )
        out = {
            "train": TransformedDataset(
                train_base, tr, build_transform(cfg, train=True), cache=c
            ),
            "val": TransformedDataset(train_base, va, eval_t, cache=c),
        }
    out["test"] = TransformedDataset(
        build_dataset(cfg, cfg.data.test_split), None, eval_t, cache=c
    )
    return out


def dataset_info(ds: Any) -> dict[str, Any]:
    """Class count, part table and ignore label a dataset declares
    (:class:`~pointsam.data.PointDataset`'s metadata)."""
    info: dict[str, Any] = {"num_classes": int(ds.num_classes)}
    if ds.ignore_index is not None:
        info["ignore_index"] = int(ds.ignore_index)
    parts = ds.category_parts
    if parts is not None:
        info["category_parts"] = [list(map(int, p)) for p in parts]
        info["num_parts"] = int(ds.num_classes)
    return info


def build_task(cfg: Config, ds: Any) -> Task:
    """The task of the config (``train.task`` or the dataset's default)."""
    name = cfg.train.task or DEFAULT_TASK.get(cfg.data.name, "cls")
    native = DEFAULT_TASK.get(cfg.data.name)
    if native is not None and name != native:
        raise ConfigError(f"train.task={name} does not fit data.name={cfg.data.name}, "
                          f"whose labels are for {native}")
    info = dataset_info(ds)
    ls = cfg.optim.label_smoothing
    if name == "partseg":
        if "category_parts" not in info:
            raise ValueError(
                f"{type(ds).__name__} has no category -> parts table "
                "(category_parts); part segmentation needs it"
            )
        parts = info["category_parts"]
        num_parts = info.get("num_parts", 1 + max(max(p) for p in parts))
        return PartSegTask(parts, num_parts, label_smoothing=ls)
    if "num_classes" not in info:
        raise ValueError(f"{type(ds).__name__} does not say its num_classes")
    if name == "semseg":
        ignore = info.get("ignore_index", cfg.train.ignore_index)
        weight = None
        if cfg.optim.class_weights != "none":
            counts = ds.class_counts()
            if counts is None:
                raise ConfigError(
                    f"optim.class_weights={cfg.optim.class_weights}: "
                    f"{type(ds).__name__} does not count its labelled points "
                    "(class_counts()); use optim.class_weights=none")
            weight = class_weights(counts)
        return SemSegTask(info["num_classes"], ignore_index=ignore, label_smoothing=ls,
                          class_weight=weight)
    return ClsTask(info["num_classes"], label_smoothing=ls)


class BuiltModel(NamedTuple):
    """What :func:`build_model` returns: the model and its factory's arguments.

    ``args`` are the keyword arguments given to
    :func:`~pointsam.models.create_model` (``model.args`` with the sizes filled
    in); checkpoints store them so that a model can be rebuilt from its name.
    """

    model: nn.Module
    args: dict[str, Any]


def build_model(cfg: Config, task: Task) -> BuiltModel:
    """``create_model(model.name, **model.args)`` with sizes filled from the task.

    Returns:
        ``(model, args)``: the model and the arguments it was built with.
    """
    args = dict(cfg.model.args)
    args.setdefault("num_classes", task.num_classes)
    if isinstance(task, PartSegTask):
        args.setdefault("num_categories", len(task.category_parts))
    try:
        model = create_model(cfg.model.name, **args)
    except TypeError as e:  # a model.args key the factory does not take
        if "argument" not in str(e):
            raise
        raise ConfigError(f"model.args for {cfg.model.name}: {e}") from None
    return BuiltModel(model, args)
