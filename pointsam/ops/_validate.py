r"""One validation helper for every public op: clear ``ValueError``s naming the argument.

**Validate once, at the boundary.** Checking ``pos`` for NaN or ``batch`` for
order reads tensor values, so each check is a host sync (``bool(tensor)``). The
public boundaries validate: a model's entry (:func:`pointsam.models.heads.unpack`
or a backbone's forward called directly), every public op (:func:`pointsam.ops.knn`,
:func:`~pointsam.ops.fps`...) and every attention module called directly. A
boundary that has validated runs the rest of the call inside :func:`trusted`;
there, the internal calls (the ops a backbone calls, its attention modules'
:meth:`~pointsam.nn.PointModule.check_forward`) skip the value checks of
``pos``/``batch``/neighbour tables and the ``batch_size`` cross-check, so a
model's forward does one validation, at its entry. Checks of arguments that are
not derived from the validated inputs (``k``, ``ratio``, a backend name) stay.

:func:`trusted` is a :class:`contextvars.ContextVar`, so it is per thread and
per task; it is never set by a module's state. :func:`validate_always` turns
trust off (every level validates again, as before this design): for debugging
a model that feeds bad data to an internal call, and for the before/after
benchmark in ``bench/models.py``.

Example:
    >>> import torch
    >>> pos = torch.tensor([[0.0, 0, float("nan")]])
    >>> check_pos(pos)
    Traceback (most recent call last):
    ...
    ValueError: pos contains NaN or Inf coordinates (1 points)
    >>> with trusted():
    ...     is_trusted()
    True
    >>> with trusted(), validate_always():
    ...     is_trusted()
    False
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

__all__ = ["check_pos", "check_batch", "check_features", "check_positive_int",
           "trusted", "is_trusted", "validate_always"]

_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pointsam_trusted_inputs", default=False)
_ALWAYS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "pointsam_validate_always", default=False)


@contextmanager
def trusted() -> Iterator[None]:
    """Mark the calls inside as internal: their inputs were validated at the boundary.

    Only a boundary that has just validated ``pos``/``batch`` (and built the
    neighbour tables it passes on) should enter it.
    """
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def is_trusted() -> bool:
    """Whether the current call is internal (inside :func:`trusted`) and may skip
    the value checks; always ``False`` inside :func:`validate_always`."""
    return _TRUSTED.get() and not _ALWAYS.get()


@contextmanager
def validate_always(enabled: bool = True) -> Iterator[None]:
    """Inside, :func:`trusted` has no effect: every level validates its inputs."""
    token = _ALWAYS.set(enabled)
    try:
        yield
    finally:
        _ALWAYS.reset(token)


def check_pos(pos: Tensor, name: str = "pos", *, allow_empty: bool = False) -> None:
    """Check ``pos`` is a floating [N, 3] tensor of finite values."""
    if not isinstance(pos, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(pos).__name__}")
    if pos.dim() != 2 or pos.size(1) != 3:
        raise ValueError(f"{name} must have shape [N, 3], got {list(pos.shape)}")
    if not pos.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {pos.dtype}")
    if pos.size(0) == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (0 points)")
    if not bool(torch.isfinite(pos).all()):
        bad = int((~torch.isfinite(pos)).any(dim=1).sum())
        raise ValueError(f"{name} contains NaN or Inf coordinates ({bad} points)")


def check_batch(batch: Tensor | None, num: int, name: str = "batch") -> None:
    """Check ``batch`` is a sorted non-negative int64 vector of length ``num``."""
    if batch is None:
        return
    if not isinstance(batch, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(batch).__name__}")
    if batch.dim() != 1:
        raise ValueError(f"{name} must be 1-D [N], got shape {list(batch.shape)}")
    if batch.dtype != torch.long:
        raise ValueError(f"{name} must be int64 (torch.long), got {batch.dtype}")
    if batch.numel() != num:
        raise ValueError(
            f"{name} has {batch.numel()} entries but the points number {num}"
        )
    if num == 0:
        return
    if bool((batch < 0).any()):
        raise ValueError(f"{name} has negative cloud ids")
    if num > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError(f"{name} must be sorted (points of one cloud contiguous)")


def check_features(x: Tensor | None, num: int, name: str = "x",
                   channels: int | None = None) -> None:
    """Check ``x`` is a floating [N, C] tensor of finite values matching ``num`` points.

    The finiteness check reads the values (a host sync), so, like the value
    checks of ``pos``, it is skipped inside :func:`trusted`.
    """
    if x is None:
        return
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape [N, C], got {list(x.shape)}")
    if x.size(0) != num:
        raise ValueError(f"{name} has {x.size(0)} rows but pos has {num} points")
    if channels is not None and x.size(1) != channels:
        raise ValueError(f"{name} has {x.size(1)} channels, expected {channels}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if not is_trusted() and x.numel() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).any(dim=1).sum())
        raise ValueError(f"{name} contains NaN or Inf values ({bad} points)")


def check_positive_int(value: int, name: str) -> None:
    """Check ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
