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
    rec.kinds["backbone.stages.1.attn"]      # {"point": WeightKind.POINT_GATE}

How it works: the context maps each :class:`PointModule` of ``model`` to its
qualified name and installs itself in a :class:`contextvars.ContextVar`. A module's
forward asks :meth:`PointModule.wants_attention` whether its weights are wanted
(``return_attention`` or an active recorder that knows the module); if so it
computes them and hands them to :meth:`PointModule.emit`. Forward never changes
module state: the recorder lives outside the modules.

Every module declares what each weight it returns *is*
(:attr:`PointModule.weight_kinds`, a :class:`WeightKind` per key), and the
recorder keeps the declarations next to the weights, so that whoever draws
them (:mod:`pointsam.viz.kinds`) reads the kind instead of guessing it from
the weight's name or shape.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from types import MappingProxyType
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from .. import ops

__all__ = ["PointModule", "AttentionRecord", "record_attention", "channels_of",
           "takes_neighbours", "is_gate", "WeightKind"]


class WeightKind(str, Enum):
    r"""What a returned weight is: the vocabulary of :attr:`PointModule.weight_kinds`.

    Shapes with :math:`N` points, :math:`B` clouds, :math:`H` heads;
    "next to it" means a key of the same dict (for a composite's re-exported
    ``branches.<i>.attn``, ``branches.<i>.nbr_idx``).

    - ``NEIGHBOUR``: :math:`(N, K, H)`, row i the weights of point i over its
      neighbours, the ``nbr_idx`` :math:`(N, K)` next to it (LocalAttention).
    - ``AXIS_TUBE``: :math:`(N, K, H)`, the same over one axis tube of
      AxialAttention (the tube's table is recorded by the branch that ran it).
    - ``AXIS``: :math:`(N, 3)`, how much point i relies on x, y, z (sums to 1).
    - ``TOKEN``: :math:`(N, M_{max}, H)`, row i over the global tokens of i's
      cloud, with ``centres`` :math:`(S, 3)` and ``assign`` :math:`(N)` next to
      it (GlobalPooledAttention).
    - ``FUSION``: :math:`(N, H, m)`, LAFF weights over the m fused inputs
      (sum to 1 over m), named by :attr:`PointModule.branch_names`.
    - ``LEVELS``: :math:`(N, L-1, H, 2)`, LAFFMultiLevel: per step, the weights
      of the lower levels (0) and the new level (1).
    - ``CHANNEL_GATE``: :math:`(B, C)`, a channel gate per cloud.
    - ``POINT_GATE``: :math:`(N, 1)`, a gate per point.
    - ``FULL``: :math:`(B, H, N_{max}, N_{max})`, full self-attention matrix of
      each cloud (MultiHeadPointAttention).
    - ``TEMPORAL``: :math:`(N, T k, H)`, rows over the k nearest points of each
      of T past scans (TemporalAttention).
    - ``CROSS_MODAL``: :math:`(N, T_{max}, H)`, rows over the tokens of
      another modality of the point's sample (CrossModalAttention).
    - ``TABLE``: not a weight: an index or position table that a weight next
      to it refers to (``nbr_idx``, ``centres``, ``assign``).

    Example:
        >>> WeightKind.POINT_GATE == "point_gate"
        True
    """

    NEIGHBOUR = "neighbour"
    AXIS_TUBE = "axis_tube"
    AXIS = "axis"
    TOKEN = "token"
    FUSION = "fusion"
    LEVELS = "levels"
    CHANNEL_GATE = "channel_gate"
    POINT_GATE = "point_gate"
    FULL = "full"
    TEMPORAL = "temporal"
    CROSS_MODAL = "cross_modal"
    TABLE = "table"


_RECORDER: contextvars.ContextVar[AttentionRecord | None] = contextvars.ContextVar(
    "pointsam_attention_recorder", default=None
)


class AttentionRecord(Mapping[str, dict[str, Tensor]]):
    r"""Weights recorded during the forward passes inside :func:`record_attention`.

    A read-only mapping ``module name -> {weight name -> Tensor}``. When a module
    runs more than once inside the context, the last call wins and every call is
    kept in :attr:`calls` (``name -> list of dicts``). The recording module's
    declarations come with its weights: :attr:`kinds` (``name -> {weight name
    -> WeightKind}``, its :attr:`~PointModule.weight_kinds`) and
    :attr:`branch_names` (``name -> names of its fused inputs``, where it
    declares them).
    """

    def __init__(self, names: dict[int, str], detach: bool = True) -> None:
        self._names = names
        self._detach = detach
        self.calls: dict[str, list[dict[str, Tensor]]] = {}
        self.kinds: dict[str, dict[str, WeightKind]] = {}
        self.branch_names: dict[str, tuple[str, ...]] = {}

    def knows(self, module: nn.Module) -> bool:
        return id(module) in self._names

    def add(self, module: nn.Module, attn: Mapping[str, Tensor]) -> None:
        name = self._names.get(id(module))
        if name is None:
            return
        item = {k: (v.detach() if self._detach else v) for k, v in attn.items()}
        self.calls.setdefault(name, []).append(item)
        if isinstance(module, PointModule):
            self.kinds[name] = dict(module.weight_kinds)
            if module.branch_names:
                self.branch_names[name] = tuple(module.branch_names)

    def kind(self, name: str, key: str) -> WeightKind | None:
        """The declared kind of weight ``key`` of module ``name`` (``None``: undeclared)."""
        return self.kinds.get(name, {}).get(key)

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
    r"""Base class of the attention modules: the protocol and the recorder hook.

    **The attention-module protocol**, declared here once. Whoever composes
    modules (the backbone plug-in :func:`pointsam.models.attention.apply_attention`,
    :class:`~pointsam.nn.AttentionBlock`, :class:`~pointsam.nn.MultiBranchAttention`)
    reads these facts and nothing else (no ``getattr`` flags, no signature
    inspection):

    - ``in_channels`` / ``out_channels`` (``int``): the width of ``x`` and of the
      output (an attribute or a property of every subclass).
    - ``forward(x, pos, batch=None, nbr_idx=None, nbr_mask=None, *,
      return_attention=False, **extra) -> [N, C_out]`` (or ``(out, attn)``).
    - :attr:`is_gate` (class level): the output is ``x`` rescaled, so a backbone
      applies it as :math:`x \leftarrow g(x)`, not as a residual
      :math:`x \leftarrow x + f(x)` (ChannelGate, PointGate, CBAM).
    - :attr:`accepts_neighbours`: forward may be given the caller's shared
      neighbour table ``nbr_idx``/``nbr_mask`` (it may also ignore it);
      ``False`` for a module that builds its own neighbourhoods and refuses a
      table (AxialAttention's anisotropic tubes).
    - :attr:`needs_features` (class level): ``x`` is required;
      :meth:`check_forward` raises ``"<Name> needs point features x, got
      None"`` otherwise.
    - :attr:`extra_inputs`: the keyword inputs of forward besides the standard
      ones (TemporalAttention: ``past_x``, ``past_pos``, ``past_batch``); a
      wrapper passes a keyword only to the modules that declare it.
    - :attr:`export_blocker` (class level): why a network holding the module
      cannot be exported, or ``None``.
    - :attr:`weight_kinds`: the :class:`WeightKind` of every key of the dict
      that ``return_attention=True`` returns (and the recorder records),
      declared next to the code that returns them; :attr:`branch_names`: the
      names of the inputs its ``FUSION`` weights mix, in order.

    Wrappers (AttentionBlock, MultiBranchAttention) set ``accepts_neighbours``,
    ``extra_inputs``, ``weight_kinds`` and ``branch_names`` per instance, from
    what they wrap. A module that is not a :class:`PointModule` is taken to
    follow the standard signature without ``return_attention`` and extra
    inputs, and not to be a gate (:func:`channels_of`, :func:`takes_neighbours`,
    :func:`is_gate`).

    **The recorder hook.** Subclasses call ``want =
    self.wants_attention(return_attention)`` in forward, compute their weights
    only when ``want`` is true, and finish with ``return self.finish(out, attn,
    return_attention)``.
    """

    #: the output is ``x`` rescaled: apply as ``x = g(x)``, without a residual
    is_gate: ClassVar[bool] = False
    #: forward may be given the caller's shared neighbour table
    accepts_neighbours: bool = True
    #: forward needs point features ``x`` (not ``None``)
    needs_features: ClassVar[bool] = True
    #: keyword inputs of forward besides ``x, pos, batch, nbr_idx, nbr_mask``
    extra_inputs: frozenset[str] = frozenset()
    #: names of the tables :meth:`plan_geometry` returns (empty: the module only
    #: uses the caller's table, or none)
    geometry_keys: ClassVar[tuple[str, ...]] = ()
    #: why a network holding this module cannot be exported (``None``: it can);
    #: read by :attr:`pointsam.models.PointModel.export_blocker`
    export_blocker: ClassVar[str | None] = None
    #: the kind of each weight forward returns with ``return_attention=True``
    weight_kinds: Mapping[str, WeightKind] = MappingProxyType({})
    #: names of the inputs that this module's ``FUSION`` weights mix, in order
    branch_names: tuple[str, ...] = ()

    def plan_geometry(self, pos: Tensor, batch: Tensor,
                      batch_size: int) -> dict[str, Tensor]:
        r"""The indices this module computes from ``pos``/``batch`` alone.

        The geometry-plan half of a module that builds its own neighbourhoods
        (its :attr:`geometry_keys`, DESIGN.md section 9): a backbone's
        ``plan()`` calls it; inside :func:`pointsam.nn.network.network_mode`
        forward reads these tables instead of searching.
        """
        return {}

    def check_forward(self, x: Tensor | None, pos: Tensor,
                      batch: Tensor | None = None, nbr_idx: Tensor | None = None,
                      nbr_mask: Tensor | None = None) -> Tensor:
        r"""The one input check at the top of a module's forward; returns ``x``.

        Raises ``"<Name> needs point features x, got None"`` when
        :attr:`needs_features` and ``x`` is ``None``, then runs
        :func:`~pointsam.nn.check_inputs` with this module's ``in_channels``
        and weights, except inside :func:`pointsam.ops.trusted` (a backbone
        that validated ``pos``/``batch`` at its entry and built the table
        itself): a module called directly by a user is validated, the same
        module inside a model is not validated again.
        """
        if x is None:
            if self.needs_features:
                raise ValueError(f"{type(self).__name__} needs point features x, "
                                 f"got None")
        if _compiled_network() or ops.is_trusted():
            return x  # type: ignore[return-value]
        from .common import check_inputs  # common imports ops, not base

        c = self.in_channels
        check_inputs(x, pos, batch, nbr_idx, nbr_mask,
                     c if isinstance(c, int) else None, module=self)
        return x  # type: ignore[return-value]

    def wants_attention(self, return_attention: bool = False) -> bool:
        if return_attention:
            return True
        if _compiled_network():  # no recorder under torch.compile
            return False
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


def _compiled_network() -> bool:
    """A network traced by ``torch.compile``: the plan was validated, and the
    recorder is not consulted (a ContextVar read breaks the graph)."""
    from .network import in_network

    return torch.compiler.is_dynamo_compiling() and in_network()


@runtime_checkable
class _HasOutChannels(Protocol):
    out_channels: int


@runtime_checkable
class _HasInChannels(Protocol):
    in_channels: int


def channels_of(module: nn.Module) -> tuple[int | None, int | None]:
    r"""``(in_channels, out_channels)`` of a module, ``None`` where unknown.

    A :class:`PointModule` declares both. Any other module is read by torch's
    own convention (``nn.Conv1d``, PyG convs): integer ``in_channels`` /
    ``out_channels`` attributes when it has them.

    Example:
        >>> channels_of(nn.Conv1d(3, 8, 1)), channels_of(nn.Identity())
        ((3, 8), (None, None))
    """
    c_in = module.in_channels if isinstance(module, _HasInChannels) else None
    c_out = module.out_channels if isinstance(module, _HasOutChannels) else None
    c_in = c_in if isinstance(c_in, int) and not isinstance(c_in, bool) else None
    c_out = c_out if isinstance(c_out, int) and not isinstance(c_out, bool) else None
    return c_in, c_out


def takes_neighbours(module: nn.Module) -> bool:
    """Whether ``module`` may be given a shared table (any non-PointModule may)."""
    return not isinstance(module, PointModule) or module.accepts_neighbours


def is_gate(module: nn.Module) -> bool:
    """Whether ``module`` is a gate (multiplicative, applied without a residual)."""
    return isinstance(module, PointModule) and module.is_gate


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
