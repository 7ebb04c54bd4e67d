r"""The pre-norm residual block that wraps any attention module."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .. import ops
from .base import PointModule, channels_of, takes_neighbours
from .common import MLP, Device, reset_children

__all__ = ["AttentionBlock", "drop_path"]


def drop_path(x: Tensor, batch: Tensor | None, p: float, training: bool) -> Tensor:
    r"""Stochastic depth per cloud (`"Deep Networks with Stochastic Depth"
    <https://arxiv.org/abs/1603.09382>`_): in training, the residual branch
    ``x`` of each cloud is zeroed with probability ``p`` and the kept ones are
    scaled by :math:`1 / (1 - p)`; the identity in evaluation.

    Example:
        >>> drop_path(torch.ones(4, 2), None, 0.5, training=False).sum().item()
        8.0
    """
    if p == 0.0 or not training:
        return x
    b = ops.batch_size_of(batch)
    keep = torch.rand(b, device=x.device) >= p  # [B]
    scale = keep.to(x.dtype) / (1.0 - p)  # [B]
    if batch is None:
        return x * scale[0]
    return x * scale[batch].unsqueeze(-1)  # [N, C]


class AttentionBlock(PointModule):
    r"""Pre-norm residual block around an attention module, as in ViT/timm's
    ``Block`` (`"An Image is Worth 16x16 Words"
    <https://arxiv.org/abs/2010.11929>`_), with layer scale
    (`"Going deeper with Image Transformers" <https://arxiv.org/abs/2103.17239>`_)
    and per-cloud drop path.

    .. math::
        \mathbf{y} = \mathbf{x} + \mathrm{DP}\big(\boldsymbol{\gamma}_1 \odot
        \mathcal{A}(\mathrm{norm}_1(\mathbf{x}), \mathbf{p}, \dots)\big),\qquad
        \mathbf{x}' = \mathbf{y} + \mathrm{DP}\big(\boldsymbol{\gamma}_2 \odot
        \mathrm{FFN}(\mathrm{norm}_2(\mathbf{y}))\big)

    with :math:`\mathcal{A}` the wrapped module (``C -> C``), FFN an MLP
    :math:`C \to rC \to C` with GELU, :math:`\boldsymbol{\gamma}` learned
    per-channel scales initialised to ``layer_scale`` (1 when ``None``, not
    learned) and DP drop path. A gate (:class:`ChannelGate`,
    :class:`PointGate`, :class:`CBAM`) works as is inside: the branch adds the
    gated features to the residual stream.

    ``nbr_idx``/``nbr_mask`` and any extra keyword arguments (``past_x=`` for
    :class:`TemporalAttention`, ``tokens=`` for :class:`CrossModalAttention`)
    are passed on to the module; ``return_attention=True`` returns the
    module's weights. The block records nothing itself: under
    :func:`~pointsam.nn.record_attention` the wrapped module records its own.

    Args:
        module: The attention module, mapping :math:`C` to :math:`C` channels.
        channels: :math:`C`; ``None`` reads it from the module's
            ``out_channels``/``channels``. (default: ``None``)
        mlp_ratio: Hidden width ratio r of the FFN; 0 leaves the FFN out.
            (default: 4.0)
        layer_scale: Initial value of :math:`\boldsymbol{\gamma}` (e.g. 1e-5),
            or ``None`` for no layer scale. (default: ``None``)
        drop_path: Drop path probability per cloud. (default: 0.0)
        norm_layer: Normalisation constructor called with :math:`C`.
            (default: ``nn.LayerNorm``)
        act_layer: FFN activation. (default: ``nn.GELU``)

    Shapes:
        - **input:** x :math:`(N, C)`, pos :math:`(N, 3)`, batch :math:`(N)`
          sorted (optional), nbr_idx / nbr_mask :math:`(N, K)` (optional),
          extra keyword arguments of the module
        - **output:** :math:`(N, C)`; with ``return_attention=True`` also the
          module's weight dict

    Example:
        >>> from pointsam.nn import CBAM
        >>> blk = AttentionBlock(CBAM(32, k=8), layer_scale=1e-3)
        >>> out, attn = blk(torch.randn(40, 32), torch.randn(40, 3),
        ...                 return_attention=True)
        >>> out.shape, sorted(attn)
        (torch.Size([40, 32]), ['channel', 'point'])
    """

    def __init__(self, module: nn.Module, *, channels: int | None = None,
                 mlp_ratio: float = 4.0, layer_scale: float | None = None,
                 drop_path: float = 0.0,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 act_layer: Callable[[], nn.Module] = nn.GELU,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
        c_in, c_out = channels_of(module)
        if channels is None:
            channels = c_out
            if channels is None:
                raise ValueError(f"cannot read the channels of {type(module).__name__}"
                                 f"; pass channels=")
        ops.check_positive_int(channels, "channels")
        for name, c in (("in", c_in), ("out", c_out)):
            if c is not None and c != channels:
                raise ValueError(f"AttentionBlock needs a module with {channels} -> "
                                 f"{channels} channels, got {name}_channels={c}")
        if not (mlp_ratio >= 0):
            raise ValueError(f"mlp_ratio must be >= 0, got {mlp_ratio!r}")
        if not (0.0 <= drop_path < 1.0):
            raise ValueError(f"drop_path must be in [0, 1), got {drop_path!r}")
        dd = {"device": device, "dtype": dtype}
        self.channels = channels
        self.mlp_ratio = mlp_ratio
        self.layer_scale = layer_scale
        self.drop_path = drop_path
        self.module = module
        # the protocol of the wrapped module is the block's own
        self._pass_return = isinstance(module, PointModule)
        self.accepts_neighbours = takes_neighbours(module)
        self.extra_inputs = (module.extra_inputs if isinstance(module, PointModule)
                             else frozenset())
        if isinstance(module, PointModule):  # return_attention returns its dict
            self.weight_kinds = dict(module.weight_kinds)
        self.norm1 = norm_layer(channels).to(**dd)
        hidden = int(round(channels * mlp_ratio))
        self.norm2: nn.Module | None = None
        self.mlp: MLP | None = None
        if hidden > 0:
            self.norm2 = norm_layer(channels).to(**dd)
            self.mlp = MLP([channels, hidden, channels], act_layer=act_layer, **dd)
        self.gamma1: nn.Parameter | None = None
        self.gamma2: nn.Parameter | None = None
        if layer_scale is not None:
            self.gamma1 = nn.Parameter(torch.empty(channels, **dd))
            if self.mlp is not None:
                self.gamma2 = nn.Parameter(torch.empty(channels, **dd))
        self.reset_parameters()

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.channels

    def reset_parameters(self) -> None:
        reset_children(self)
        for g in (self.gamma1, self.gamma2):
            if g is not None:
                nn.init.constant_(g, float(self.layer_scale or 1.0))

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor | None = None,
                nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None, *,
                return_attention: bool = False, **kwargs: Any
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        if x is None or not isinstance(x, Tensor) or x.dim() != 2:
            got = list(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"AttentionBlock needs x of shape [N, C], got {got}")
        if x.size(-1) != self.channels:
            raise ValueError(f"x has {x.size(-1)} channels, expected {self.channels}")
        attn: dict[str, Tensor] = {}
        h = self.norm1(x)  # [N, C]
        if nbr_idx is not None or nbr_mask is not None:
            kwargs = dict(kwargs, nbr_idx=nbr_idx, nbr_mask=nbr_mask)
        if return_attention and self._pass_return:
            y, attn = self.module(h, pos, batch, return_attention=True,
                                  **kwargs)  # [N, C]
        else:
            y = self.module(h, pos, batch, **kwargs)  # [N, C]
        if self.gamma1 is not None:
            y = y * self.gamma1
        x = x + drop_path(y, batch, self.drop_path, self.training)  # [N, C]
        if self.mlp is not None:
            assert self.norm2 is not None
            y = self.mlp(self.norm2(x))  # [N, C]
            if self.gamma2 is not None:
                y = y * self.gamma2
            x = x + drop_path(y, batch, self.drop_path, self.training)  # [N, C]
        if return_attention:
            return x, dict(attn)
        return x

    def extra_repr(self) -> str:
        return (f"{self.channels}, mlp_ratio={self.mlp_ratio}, "
                f"layer_scale={self.layer_scale}, drop_path={self.drop_path}")
