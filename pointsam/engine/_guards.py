"""Small guards the loops share: unused features, errors from DataLoader workers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from torch import nn

__all__ = ["TrainingDiverged", "uses_features", "drop_unused_features", "worker_errors", "one_line"]


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or Inf (the message says where and what to try)."""


def uses_features(model: nn.Module) -> bool:
    """Whether ``model`` reads ``x``: a :class:`~pointsam.models.PointModel` says
    so (``in_channels > 0``); any other model is assumed to."""
    from torch.nn.parallel import DistributedDataParallel

    from pointsam.models import PointModel

    if isinstance(model, DistributedDataParallel):
        model = model.module
    return model.in_channels > 0 if isinstance(model, PointModel) else True


def drop_unused_features(model: nn.Module, data: Any) -> Any:
    """``data`` without ``x`` when ``model`` was built without input features.

    The engine feeds datasets whose samples carry features (normals, intensity)
    to models that may not use them; the model warns when it is given an ``x``
    it ignores, so the engine leaves it out.
    """
    if getattr(data, "x", None) is not None and not uses_features(model):
        data = data.clone() if hasattr(data, "clone") else data
        del data.x
    return data


_WRAPPED = "Original Traceback (most recent call last):"


def _original(e: BaseException) -> str | None:
    msg = str(e)
    if _WRAPPED not in msg:
        return None
    last = msg.rstrip().splitlines()[-1]
    head, sep, tail = last.partition(": ")
    return tail if sep and type(e).__name__ in head else last


def one_line(e: BaseException) -> str:
    """The message of ``e`` for a one-line report (a worker's original message)."""
    return _original(e) or str(e)


def worker_errors(batches: Iterable[Any]) -> Iterator[Any]:
    """Iterate ``batches``; an error raised in a DataLoader worker comes back with
    its original message.

    torch re-raises a worker's exception in the main process as the same class
    whose message is ``Caught X in DataLoader worker process N`` plus the
    worker's whole traceback; this re-raises the same class with the original
    one-line message (the message of a :class:`~pointsam.data.CloudFormatError`
    names the file).
    """
    it = iter(batches)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception as e:
            original = _original(e)
            if original is None:
                raise
            try:
                new = type(e)(original)
            except Exception:  # a class that does not take one message
                raise e from None
            raise new from None
        yield item
