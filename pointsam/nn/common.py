r"""Small building blocks shared by the attention modules.

- :class:`MLP`: a stack of ``Linear`` layers on the last dimension, so it runs on
  ``[N, C]``, ``[N, K, C]`` or any ``[..., C]`` tensor.
- :func:`check_inputs`: the one input check every module calls at the top of
  ``forward`` (clear ``ValueError``s naming the argument).
- :func:`neighbours`: the neighbour table of a module, computed with
  :func:`pointsam.ops.knn` only when the caller did not pass one.
- :func:`linear_chain`: the affine layers of a plain Linear/ReLU network, for
  fast paths that run its matmuls themselves.
- :func:`reset_children`: the one ``reset_parameters()`` idiom of the package.
- :data:`Device`: the one annotation of every ``device=`` argument.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from .network import tracing

__all__ = ["MLP", "check_inputs", "neighbours", "linear_chain", "Layer",
           "fold_batch_norm", "run_folded", "block_elements", "Device",
           "reset_children"]

#: the annotation of every ``device=`` argument in :mod:`pointsam.nn` and
#: :mod:`pointsam.models`
Device = torch.device | str | None

#: one affine layer of :func:`linear_chain`: weight [C_out, C_in], bias [C_out] or
#: None, and whether a ReLU follows
Layer = tuple[Tensor, Tensor | None, bool]


def reset_children(module: nn.Module) -> None:
    r"""Re-initialise every child of ``module`` (STYLE.md section 5).

    Calls ``reset_parameters()`` on each direct child that has one; a child
    without one (a container such as ``nn.Sequential`` or ``nn.ModuleList``)
    is walked into the same way. Parameters owned by ``module`` itself are left
    to its own ``reset_parameters``.

    Example:
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
        >>> with torch.no_grad():
        ...     _ = net[0].weight.fill_(0.0)
        >>> reset_children(net)
        >>> bool(net[0].weight.abs().sum() > 0)
        True
    """
    for child in module.children():
        reset = getattr(child, "reset_parameters", None)
        if callable(reset):
            reset()
        else:
            reset_children(child)


class MLP(nn.Module):
    r"""Multi-layer perceptron on the last dimension.

    .. math::
        \mathbf{h}_0 = \mathbf{x},\quad
        \mathbf{h}_{l} = \sigma\big(\mathrm{norm}(\mathbf{W}_l \mathbf{h}_{l-1}
        + \mathbf{b}_l)\big),\quad l = 1 \dots L

    with the last layer left plain (no norm, no activation) when
    ``plain_last=True``.

    Args:
        channels: Sizes ``[C_in, C_1, ..., C_out]`` (at least two entries).
        act_layer: Activation constructor. (default: ``nn.ReLU``)
        norm_layer: Normalisation constructor called with the width, or ``None``.
            It sees the features flattened to ``[-1, C]``, so ``nn.BatchNorm1d``
            and ``nn.LayerNorm`` both work. (default: ``None``)
        bias: Learn the biases of the linear layers. (default: ``True``)
        plain_last: No norm and no activation after the last layer.
            (default: ``True``)
        fused: In eval mode, fold each ``BatchNorm1d`` into the ``Linear``
            before it and apply ReLU in place (:meth:`folded`); ``False`` is the
            plain reference. Only for ReLU and BatchNorm1d/no norm; never while
            tracing (export keeps the plain graph). (default: ``True``)

    Shapes:
        - **input:** :math:`(*, C_{in})`
        - **output:** :math:`(*, C_{out})`

    Example:
        >>> mlp = MLP([3, 16, 8])
        >>> mlp(torch.randn(10, 4, 3)).shape
        torch.Size([10, 4, 8])
    """

    def __init__(self, channels: Sequence[int], *,
                 act_layer: Callable[[], nn.Module] = nn.ReLU,
                 norm_layer: Callable[[int], nn.Module] | None = None,
                 bias: bool = True, plain_last: bool = True, fused: bool = True,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        channels = list(channels)
        if len(channels) < 2:
            raise ValueError(f"MLP needs at least [in, out] channels, got {channels}")
        self.fused = fused
        for c in channels:
            ops.check_positive_int(c, "channels")
        dd = {"device": device, "dtype": dtype}
        self.channels = channels
        self.plain_last = plain_last
        n = len(channels) - 1
        self.lins = nn.ModuleList(
            nn.Linear(channels[i], channels[i + 1], bias=bias, **dd) for i in range(n))
        last_plain = 1 if plain_last else 0
        self.norms = nn.ModuleList(
            norm_layer(channels[i + 1]) if norm_layer is not None else nn.Identity()
            for i in range(n - last_plain))
        self.acts = nn.ModuleList(act_layer() for _ in range(n - last_plain))
        if norm_layer is not None:
            self.norms.to(**dd)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_children(self)

    @property
    def in_channels(self) -> int:
        return self.channels[0]

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    def forward(self, x: Tensor) -> Tensor:
        layers = self.folded() if self.fused and not tracing() else None
        if layers is None:
            return self.forward_from_first(self.lins[0](x))
        return run_folded(x, layers)

    def folded(self) -> list[tuple[Tensor, Tensor | None, bool]] | None:
        r"""The layers as ``(weight, bias, relu)``, each eval-mode BatchNorm folded
        into the Linear before it (:func:`fold_batch_norm`), or ``None`` where
        that is not exact (a norm in training mode or other than ``BatchNorm1d``,
        an activation other than ReLU). Computed at every call (a few small
        tensors), so the module keeps no cache.
        """
        out: list[tuple[Tensor, Tensor | None, bool]] = []
        for i, lin in enumerate(self.lins):
            if i >= len(self.acts):
                out.append((lin.weight, lin.bias, False))
                continue
            if type(self.acts[i]) is not nn.ReLU:
                return None
            norm = self.norms[i]
            if isinstance(norm, nn.Identity):
                out.append((lin.weight, lin.bias, True))
                continue
            wb = fold_batch_norm(lin, norm)
            if wb is None:
                return None
            out.append((*wb, True))
        return out

    def forward_from_first(self, h: Tensor) -> Tensor:
        r"""Continue from ``h = lins[0](x)`` (before its norm and activation).

        Lets a caller compute the first, linear layer more cheaply, e.g.
        :math:`\mathbf{W}(\mathbf{p}_i - \mathbf{c}_m) + \mathbf{b} =
        (\mathbf{W}\mathbf{p}_i + \mathbf{b}) - \mathbf{W}\mathbf{c}_m` for all
        pairs from per-point products.
        """
        x = h
        for i, lin in enumerate(self.lins):
            if i > 0:
                x = lin(x)
            if i < len(self.acts):
                norm = self.norms[i]
                if not isinstance(norm, nn.Identity):
                    shape = x.shape
                    x = norm(x.reshape(-1, shape[-1])).reshape(shape)  # [*, C_l]
                x = self.acts[i](x)
        return x

    def extra_repr(self) -> str:
        return f"{self.channels}, plain_last={self.plain_last}"


_BLOCK = 1 << 18  # elements of the widest temporary of one block (1 MB in float32)


def block_elements() -> int:
    """Elements of one block of the eval fast paths: :data:`_BLOCK` at one torch
    thread, unbounded (one block) at several. Blocks keep one thread's layers in
    cache (3x on a scan's first stage), but with several threads each small op is
    split and joined again: on 2 cores shared with other processes, blocks made
    2 threads 5x slower than whole tensors."""
    return _BLOCK if torch.get_num_threads() == 1 else 1 << 62


def fold_batch_norm(lin: nn.Linear, norm: nn.Module) -> tuple[Tensor, Tensor] | None:
    r"""``norm(lin(x)) = x W'^T + b'`` for an eval-mode ``BatchNorm1d``, or ``None``
    (another norm, training mode, no running statistics).

    .. math::
        \mathbf{W}' = \mathrm{diag}(s)\,\mathbf{W},\quad
        \mathbf{b}' = s \odot (\mathbf{b} - \mu) + \beta,\quad
        s = \gamma / \sqrt{\sigma^2 + \epsilon}

    computed in at least float32, then cast to the weights' dtype.

    The formula of :func:`torch.nn.utils.fusion.fuse_linear_bn_weights`, which
    is not used because it needs an affine norm (``bn_w``, ``bn_b`` not
    ``None``: ``BatchNorm1d(affine=False)`` would fail), computes in the weights'
    own dtype (float16 weights would fold in float16) and returns
    ``nn.Parameter`` s that require grad; folding here feeds tracing only.
    """
    if type(norm) is not nn.BatchNorm1d or norm.training \
            or norm.running_mean is None or norm.running_var is None:
        return None
    ct = torch.promote_types(lin.weight.dtype, torch.float32)
    s = torch.rsqrt(norm.running_var.to(ct) + norm.eps)  # [C]
    if norm.weight is not None:
        s = s * norm.weight.to(ct)
    b = -norm.running_mean.to(ct) if lin.bias is None \
        else lin.bias.to(ct) - norm.running_mean.to(ct)
    b = b * s if norm.bias is None else torch.addcmul(norm.bias.to(ct), b, s)
    w = lin.weight.to(ct) * s.unsqueeze(1)  # [C_out, C_in]
    return w.to(lin.weight.dtype), b.to(lin.weight.dtype)


def run_folded(x: Tensor, layers: Sequence[tuple[Tensor, Tensor | None, bool]], *,
               max_dim: int | None = None) -> Tensor:
    r"""``x`` through :meth:`MLP.folded` layers: ``linear``, then ReLU in place.

    With ``max_dim`` the result is the maximum over that dimension (PointNet's
    pooling), and the last ReLU is applied after it, to the pooled tensor only:
    :math:`\max_k \mathrm{relu}(z_k) = \mathrm{relu}(\max_k z_k)`.

    Example:
        >>> mlp = MLP([3, 8], plain_last=False).eval()
        >>> x = torch.randn(5, 4, 3)
        >>> torch.equal(run_folded(x, mlp.folded(), max_dim=1),
        ...             mlp(x).max(dim=1).values)
        True
    """
    for i, (w, b, relu) in enumerate(layers):
        x = F.linear(x, w, b)
        if max_dim is not None and i == len(layers) - 1:
            x = x.amax(max_dim)
        if relu:
            x = x.relu_()
    return x


def check_inputs(x: Tensor | None, pos: Tensor, batch: Tensor | None = None,
                 nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None,
                 in_channels: int | None = None, *,
                 module: nn.Module | None = None) -> None:
    r"""Validate the standard ``(x, pos, batch, nbr_idx, nbr_mask)`` inputs.

    Raises a ``ValueError`` (``TypeError`` for a non-tensor) that names the
    argument when: ``pos`` is not a finite float ``[N, 3]`` or is empty; ``batch``
    is not a sorted int64 ``[N]``; ``x`` is not a float ``[N, in_channels]``;
    ``nbr_idx`` is not an int64 ``[N, K]`` with values in ``[0, N)``, or links
    points of different clouds (where ``nbr_mask`` is true); ``nbr_mask`` is not a
    bool ``[N, K]`` or is given without ``nbr_idx``; ``x``'s dtype differs from
    the floating weights of ``module`` outside autocast (say float64 features
    into a float32 module: cast one of them).

    Example:
        >>> check_inputs(torch.randn(5, 4), torch.randn(5, 3), in_channels=3)
        Traceback (most recent call last):
        ...
        ValueError: x has 4 channels, expected 3
    """
    ops.check_pos(pos, "pos")
    n = pos.size(0)
    ops.check_batch(batch, n, "batch")
    ops.check_features(x, n, "x", channels=in_channels)
    if x is not None and x.device != pos.device:
        raise ValueError(f"x is on {x.device} but pos is on {pos.device}")
    if x is not None and module is not None \
            and not torch.is_autocast_enabled(x.device.type):
        w = next((p for p in module.parameters() if p.is_floating_point()), None)
        if w is not None and w.dtype != x.dtype:
            raise ValueError(
                f"x is {x.dtype} but {type(module).__name__}'s weights are {w.dtype}; "
                f"cast the input (x.to({w.dtype})) or the module (.to({x.dtype}))")
    if nbr_idx is None:
        if nbr_mask is not None:
            raise ValueError("nbr_mask given without nbr_idx")
        return
    if not isinstance(nbr_idx, Tensor):
        raise TypeError(f"nbr_idx must be a torch.Tensor, got {type(nbr_idx).__name__}")
    if nbr_idx.dim() != 2 or nbr_idx.size(0) != n or nbr_idx.size(1) < 1:
        raise ValueError(f"nbr_idx must have shape [N, K] = [{n}, K] with K >= 1, "
                         f"got {list(nbr_idx.shape)}")
    if nbr_idx.dtype != torch.long:
        raise ValueError(f"nbr_idx must be int64 (torch.long), got {nbr_idx.dtype}")
    if nbr_idx.numel() and bool(((nbr_idx < 0) | (nbr_idx >= n)).any()):
        raise ValueError(f"nbr_idx has entries outside [0, {n}) "
                         f"(min {int(nbr_idx.min())}, max {int(nbr_idx.max())})")
    if nbr_mask is not None:
        if not isinstance(nbr_mask, Tensor):
            raise TypeError(
                f"nbr_mask must be a torch.Tensor, got {type(nbr_mask).__name__}")
        if nbr_mask.shape != nbr_idx.shape:
            raise ValueError(f"nbr_mask must have the shape of nbr_idx "
                             f"{list(nbr_idx.shape)}, got {list(nbr_mask.shape)}")
        if nbr_mask.dtype != torch.bool:
            raise ValueError(f"nbr_mask must be bool, got {nbr_mask.dtype}")
        if n and not bool(nbr_mask.any(1).all()):
            raise ValueError("nbr_mask has a row with no valid neighbour")
    if batch is not None and n:
        cross = batch[nbr_idx] != batch.unsqueeze(1)  # [N, K]
        if nbr_mask is not None:
            cross = cross & nbr_mask
        if bool(cross.any()):
            raise ValueError("nbr_idx links points of different clouds "
                             "(neighbours must lie in the point's own cloud)")


def neighbours(pos: Tensor, batch: Tensor | None, k: int, dilation: int = 1,
               nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None
               ) -> tuple[Tensor, Tensor]:
    r"""The neighbour table ``(nbr_idx [N, K], nbr_mask [N, K])`` of a module.

    Calls :func:`pointsam.ops.knn` ``(pos, k, batch, dilation=dilation)`` only when
    ``nbr_idx`` is ``None``; a given table is returned with an all-true mask when
    ``nbr_mask`` is ``None``.

    Example:
        >>> idx, mask = neighbours(torch.randn(6, 3), None, k=4)
        >>> idx.shape, bool(mask.all())
        (torch.Size([6, 4]), True)
    """
    if nbr_idx is None:
        return ops.knn(pos, k, batch, dilation=dilation)
    if nbr_mask is None:
        nbr_mask = torch.ones_like(nbr_idx, dtype=torch.bool)
    return nbr_idx, nbr_mask


def _has_hooks(module: nn.Module) -> bool:
    """Forward or backward hooks on ``module``, its children, or all modules."""
    glob = nn.modules.module
    if glob._global_forward_hooks or glob._global_forward_pre_hooks or \
            glob._global_backward_hooks or glob._global_backward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
               or m._backward_pre_hooks for m in module.modules())


def linear_chain(module: nn.Module) -> list[Layer] | None:
    r"""``module`` as a chain of affine layers, each optionally followed by a ReLU.

    Returns ``[(weight, bias, relu), ...]`` (``[]`` for ``nn.Identity``) when
    ``module`` computes exactly
    :math:`\mathbf{x} \mapsto \sigma_L(\dots\sigma_1(\mathbf{x}\mathbf{W}_1^\top +
    \mathbf{b}_1)\dots)` with :math:`\sigma_l` a ReLU or the identity: an
    ``nn.Identity``, an ``nn.Linear``, an ``nn.Sequential`` of ``nn.Linear`` and
    ``nn.ReLU``, an :class:`MLP` without norms and with ``nn.ReLU`` activations,
    or PyG's ``MLP`` of the same kind (no norm, ReLU, no active dropout).
    Anything else, and any module with hooks (forward or backward, its own or
    global: a fast path that ran the matmuls itself would skip them), gives
    ``None``: the caller then runs the module.

    Example:
        >>> [(tuple(w.shape), relu) for w, b, relu in linear_chain(MLP([3, 8, 4]))]
        [((8, 3), True), ((4, 8), False)]
        >>> linear_chain(MLP([3, 4], norm_layer=nn.LayerNorm, plain_last=False)) is None
        True
    """
    if _has_hooks(module):
        return None
    if isinstance(module, nn.Identity):
        return []
    if isinstance(module, nn.Linear):
        return [(module.weight, module.bias, False)]
    if isinstance(module, nn.Sequential):
        layers: list[Layer] = []
        for m in module:
            if isinstance(m, nn.Linear):
                layers.append((m.weight, m.bias, False))
            elif isinstance(m, nn.ReLU) and layers and not layers[-1][2]:
                layers[-1] = (layers[-1][0], layers[-1][1], True)
            else:
                return None
        return layers
    if isinstance(module, MLP):
        if not all(isinstance(n, nn.Identity) for n in module.norms) or \
                not all(type(a) is nn.ReLU for a in module.acts):
            return None
        return [(lin.weight, lin.bias, i < len(module.acts))
                for i, lin in enumerate(module.lins)]
    return _pyg_linear_chain(module)


def _pyg_linear_chain(module: nn.Module) -> list[Layer] | None:
    """:func:`linear_chain` of a ``torch_geometric.nn.MLP`` (None for other types)."""
    mlp_mod = sys.modules.get("torch_geometric.nn.models.mlp")  # only if imported
    lin_mod = sys.modules.get("torch_geometric.nn.dense.linear")
    if mlp_mod is None or lin_mod is None or not isinstance(module, mlp_mod.MLP):
        return None
    if not all(isinstance(n, nn.Identity) for n in module.norms) or \
            (module.act is not None and type(module.act) is not nn.ReLU):
        return None
    if module.training and any(p > 0 for p in module.dropout):
        return None
    layers: list[Layer] = []
    for i, lin in enumerate(module.lins):
        if not isinstance(lin, (nn.Linear, lin_mod.Linear)) or \
                isinstance(lin.weight, nn.parameter.UninitializedParameter):
            return None
        relu = module.act is not None and i < len(module.norms)
        layers.append((lin.weight, lin.bias, relu))
    return layers
