r"""Attention modules for point clouds (DESIGN.md section 3).

Every module takes ``(x, pos, batch=None, nbr_idx=None, nbr_mask=None)`` and
returns features ``[N, C_out]``; with ``return_attention=True`` it returns
``(out, attn)`` with ``attn`` a dict of its weights. :func:`record_attention`
collects the weights of every module of a model in one forward pass.
"""

from .axial import AxialAttention
from .base import (
           AttentionRecord,
           PointModule,
           WeightKind,
           channels_of,
           is_gate,
           record_attention,
           takes_neighbours,
)
from .block import AttentionBlock

# helpers add their imports below, one line per file
from .common import MLP, check_inputs, neighbours
from .cross_modal import CrossModalAttention
from .gates import CBAM, ChannelGate, PointGate
from .global_attention import GlobalPooledAttention, LocalGlobalAttention
from .laff import LAFF, LAFFMultiLevel
from .local_attention import LocalAttention
from .multi_branch import MultiBranchAttention
from .multihead import MultiHeadPointAttention
from .temporal import TemporalAttention

__all__ = ["PointModule", "AttentionRecord", "record_attention", "channels_of",
           "takes_neighbours", "is_gate", "WeightKind"]
# helpers extend __all__ below
__all__ += ["MLP", "check_inputs", "neighbours", "LAFF", "LAFFMultiLevel"]
__all__ += ["LocalAttention", "GlobalPooledAttention", "LocalGlobalAttention",
            "AxialAttention"]
__all__ += ["ChannelGate", "PointGate", "CBAM", "MultiHeadPointAttention",
            "TemporalAttention", "CrossModalAttention", "AttentionBlock",
            "MultiBranchAttention"]
