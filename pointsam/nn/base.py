r"""The base class of every attention module and the attention recorder.

Every module of :mod:`pointsam.nn` derives from :class:`PointModule`. Its
``forward`` accepts ``return_attention``; when that is ``True`` the module returns
``(out, attn)`` with ``attn`` a ``dict[str, Tensor]`` of the weights it computed.

To collect the weights of *every* module of a whole model in one forward pass,
without editing the model, use :func:`record_attention` (re-exported as
:func:`pointsam.viz.capture`)::

    with record_attention(model) as rec:
        model(batch)
    rec["backbone.stages.1.attn"]["point"]   # [N, 1]

How it works: the context maps each :class:`PointModule` of ``model`` to its
qualified name and installs itself in a :class:`contextvars.ContextVar`. A module's
forward asks :meth:`PointModule.wants_attention` whether its weights are wanted
(``return_attention`` or an active recorder that knows the module); if so it
computes them and hands them to :meth:`PointModule.emit`. Forward never changes
module state: the recorder lives outside the modules.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from torch import Tensor, nn

__all__ = ["PointModule", "AttentionRecord", "record_attention"]

_RECORDER: contextvars.ContextVar[AttentionRecord | None] = contextvars.ContextVar(
    "pointsam_attention_recorder", default=None
)


class AttentionRecord(Mapping[str, dict[str, Tensor]]):
    r"""Weights recorded during the forward passes inside :func:`record_attention`.

    A read-only mapping ``module name -> {weight name -> Tensor}``. When a module
    runs more than once inside the context, the last call wins and every call is
    kept in :attr:`calls` (``name -> list of dicts``).
    """

    def __init__(self, names: dict[int, str], detach: bool = True) -> None:
        self._names = names
        self._detach = detach
        self.calls: dict[str, list[dict[str, Tensor]]] = {}

    def knows(self, module: nn.Module) -> bool:
        return id(module) in self._names

    def add(self, module: nn.Module, attn: Mapping[str, Tensor]) -> None:
        name = self._names.get(id(module))
        if name is None:
            return
        item = {k: (v.detach() if self._detach else v) for k, v in attn.items()}
        self.calls.setdefault(name, []).append(item)

    def __getitem__(self, name: str) -> dict[str, Tensor]:
        return self.calls[name][-1]

    def __iter__(self) -> Iterator[str]:
        return iter(self.calls)

    def __len__(self) -> int:
        return len(self.calls)

    def __repr__(self) -> str:
        items = ", ".join(
            f"{n}: {{{', '.join(f'{k}: {tuple(v.shape)}' for k, v in d.items())}}}"
            for n, d in self.items()
        )
        return f"AttentionRecord({items})"


class PointModule(nn.Module):
    r"""Base class of the attention modules: it connects them to the recorder.

    Subclasses call ``want = self.wants_attention(return_attention)`` in forward,
    compute their weights only when ``want`` is true, and finish with
    ``return self.finish(out, attn, return_attention)``.
    """

    def wants_attention(self, return_attention: bool = False) -> bool:
        if return_attention:
            return True
        rec = _RECORDER.get()
        return rec is not None and rec.knows(self)

    def emit(self, attn: Mapping[str, Tensor]) -> None:
        rec = _RECORDER.get()
        if rec is not None:
            rec.add(self, attn)

    def finish(
        self, out: Tensor, attn: dict[str, Tensor] | None, return_attention: bool
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        if attn is not None:
            self.emit(attn)
        if return_attention:
            return out, (attn if attn is not None else {})
        return out


@contextmanager
def record_attention(model: nn.Module, detach: bool = True) -> Iterator[AttentionRecord]:
    r"""Record every attention weight that ``model``'s modules compute.

    Args:
        model: Any module; every :class:`PointModule` inside it is recorded under
            its qualified name from ``model.named_modules()`` (``""`` for the
            model itself).
        detach: Store detached tensors (default) or keep them in the graph, for
            attention-based losses or saliency.

    Example:
        >>> import torch
        >>> from pointsam.nn import CBAM
        >>> m = torch.nn.Sequential()
        >>> gate = CBAM(8, k=4)
        >>> pos, x = torch.randn(20, 3), torch.randn(20, 8)
        >>> with record_attention(gate) as rec:
        ...     _ = gate(x, pos)
        >>> sorted(rec)
        ['', 'channel', 'point']
    """
    names = {id(m): n for n, m in model.named_modules() if isinstance(m, PointModule)}
    rec = AttentionRecord(names, detach=detach)
    token = _RECORDER.set(rec)
    try:
        yield rec
    finally:
        _RECORDER.reset(token)
