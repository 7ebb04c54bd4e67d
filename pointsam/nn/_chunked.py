r"""Memory-lean neighbour attention: chunked forward, recomputation in backward.

A neighbour-attention layer gathers per-point tensors into ``[N, K, C]`` and
builds several such intermediates (relative-position encodings, logits, softmax
weights). Plain autograd keeps all of them alive until backward. The autograd
function here instead

- runs a ``kernel`` over blocks of ``chunk`` points, so at most one block of
  ``[chunk, K, C]`` temporaries exists at any time;
- saves only its inputs (the per-point tensors ``dst`` [N, C_d] and ``src``
  [N, C_s], ``nbr_idx``, ``nbr_mask``);
- in backward, recomputes each block under autograd, differentiates it with
  :func:`torch.autograd.grad`, and scatters the gradient of the gathered
  ``src[nbr_idx]`` back with ``index_add_``.

Parameters of the modules that the kernel calls (``pos_nn``, ``attn_nn``) are
passed to :meth:`ChunkedNeighbourFunction.apply` so autograd returns their
gradients. The result equals the plain computation ``kernel(dst, src[nbr_idx],
nbr_mask)`` in value and gradient (tested, including ``gradcheck`` in float64).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ChunkedNeighbourFunction", "chunked_neighbour_apply", "default_chunk"]

# kernel(dst_c [n, C_d], src_j [n, K, C_s], mask_c [n, K], want) -> (out [n, C_o],
# attn [n, K, H] or None)
Kernel = Callable[[Tensor, Tensor, Tensor, bool], tuple[Tensor, Tensor | None]]


def default_chunk(k: int, channels: int, budget: int = 1 << 19) -> int:
    """Points per block so that one ``[chunk, K, C]`` temporary holds ~``budget``."""
    return max(64, budget // max(1, k * channels))


class ChunkedNeighbourFunction(torch.autograd.Function):
    """See the module docstring. Returns ``(out [N, C_o], attn [N, K, H] or [0])``."""

    @staticmethod
    def forward(ctx: Any, kernel: Kernel, chunk: int, want: bool, dst: Tensor,
                src: Tensor, nbr_idx: Tensor, nbr_mask: Tensor,
                *params: Tensor) -> tuple[Tensor, Tensor]:
        n = dst.size(0)
        outs, attns = [], []
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            src_j = src[nbr_idx[s:e]]  # [n, K, C_s]
            o, a = kernel(dst[s:e], src_j, nbr_mask[s:e], want)  # [n, C_o]
            outs.append(o)
            if want and a is not None:
                attns.append(a)
        out = torch.cat(outs) if len(outs) > 1 else outs[0]  # [N, C_o]
        attn = torch.cat(attns) if attns else out.new_zeros(0)  # [N, K, H]
        ctx.kernel, ctx.chunk, ctx.num_params = kernel, chunk, len(params)
        ctx.save_for_backward(dst, src, nbr_idx, nbr_mask, *params)
        ctx.mark_non_differentiable(attn)
        return out, attn

    @staticmethod
    def backward(ctx: Any, g_out: Tensor, g_attn: Tensor
                 ) -> tuple[Tensor | None, ...]:
        dst, src, nbr_idx, nbr_mask, *params = ctx.saved_tensors
        need = ctx.needs_input_grad
        need_dst, need_src = need[3], need[4]
        need_p = list(need[7:])
        g_dst = torch.zeros_like(dst) if need_dst else None
        g_src = torch.zeros_like(src) if need_src else None
        g_params: list[Tensor | None] = [
            torch.zeros_like(p) if np_ else None for p, np_ in zip(params, need_p)]
        wanted_p = [p for p, np_ in zip(params, need_p) if np_]
        n = dst.size(0)
        g_out = g_out.contiguous()
        for s in range(0, n, ctx.chunk):
            e = min(n, s + ctx.chunk)
            idx = nbr_idx[s:e]  # [n, K]
            with torch.enable_grad():
                d = dst[s:e].detach().requires_grad_(need_dst)  # [n, C_d]
                src_j = src[idx].detach().requires_grad_(need_src)  # [n, K, C_s]
                o, _ = ctx.kernel(d, src_j, nbr_mask[s:e], False)  # [n, C_o]
                inputs = ([d] if need_dst else []) + ([src_j] if need_src else []) \
                    + wanted_p
                if not inputs:
                    break
                grads = torch.autograd.grad(o, inputs, g_out[s:e], allow_unused=True)
            it = iter(grads)
            if need_dst:
                gd = next(it)
                if gd is not None:
                    g_dst[s:e] = gd  # type: ignore[index]
            if need_src:
                gs = next(it)
                if gs is not None:
                    g_src.index_add_(  # type: ignore[union-attr]
                        0, idx.reshape(-1), gs.reshape(-1, gs.size(-1)))  # [n*K, C_s]
            j = 0
            for i, np_ in enumerate(need_p):
                if np_:
                    gp = next(it)
                    if gp is not None:
                        g_params[i].add_(gp)  # type: ignore[union-attr]
                    j += 1
        return (None, None, None, g_dst, g_src, None, None, *g_params)


def chunked_neighbour_apply(kernel: Kernel, dst: Tensor, src: Tensor, nbr_idx: Tensor,
                            nbr_mask: Tensor, modules: Sequence[nn.Module], *,
                            chunk: int, want: bool = False, fused: bool = True
                            ) -> tuple[Tensor, Tensor | None]:
    r"""Run ``kernel`` over the neighbourhoods of all points.

    Computes ``kernel(dst, src[nbr_idx], nbr_mask, want)`` either in one piece
    under plain autograd (``fused=False``, the reference) or through
    :class:`ChunkedNeighbourFunction` (``fused=True``), which keeps no
    ``[N, K, C]`` tensor for backward.

    Args:
        kernel: ``(dst_c [n, C_d], src_j [n, K, C_s], mask_c [n, K], want) ->
            (out [n, C_o], attn [n, K, H] or None)``; row-wise in the points.
        dst: Per-point tensors of the centre points :math:`(N, C_d)`.
        src: Per-point tensors gathered over the neighbours :math:`(N, C_s)`.
        nbr_idx: :math:`(N, K)` int64.
        nbr_mask: :math:`(N, K)` bool.
        modules: The modules whose parameters ``kernel`` uses.
        chunk: Points per block (fused path).
        want: Also return the kernel's attention weights.
        fused: Use the chunked recomputing path.

    Returns:
        ``(out [N, C_o], attn [N, K, H] or None)``
    """
    if not fused:
        return kernel(dst, src[nbr_idx], nbr_mask, want)  # src[nbr_idx]: [N, K, C_s]
    params = [p for m in modules for p in m.parameters()]
    out, attn = ChunkedNeighbourFunction.apply(
        kernel, chunk, want, dst, src, nbr_idx, nbr_mask, *params)
    return out, (attn if want else None)
