r"""Attention modules for point clouds (DESIGN.md section 3).

Every module takes ``(x, pos, batch=None, nbr_idx=None, nbr_mask=None)`` and
returns features ``[N, C_out]``; with ``return_attention=True`` it returns
``(out, attn)`` with ``attn`` a dict of its weights. :func:`record_attention`
collects the weights of every module of a model in one forward pass.
"""

from .base import AttentionRecord, PointModule, record_attention

# helpers add their imports below, one line per file

__all__ = ["PointModule", "AttentionRecord", "record_attention"]
# helpers extend __all__ below
