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

from .common import Device
from .network import tracing

__all__ = ["ChunkedNeighbourFunction", "chunked_neighbour_apply", "default_chunk"]

# kernel(dst [n, C_d] each, src_j [n, K, C_s] each, mask_c [n, K] or None, want)
#   -> (out [n, C_o], attn [n, K, H] or None)
Kernel = Callable[[Sequence[Tensor], Sequence[Tensor], Tensor | None, bool],
                  tuple[Tensor, Tensor | None]]


def default_chunk(k: int, channels: int, budget: int | None = None, *,
                  device: Device = None) -> int:
    """Points per block so that one ``[chunk, K, C]`` temporary holds ~``budget``.

    The budget is 2^19 elements on the CPU (blocks that stay in cache) and 2^25 on a
    GPU (few, large kernels).
    """
    if budget is None:
        budget = 1 << (19 if device is None or device.type == "cpu" else 25)
    return max(64, budget // max(1, k * channels))


def _gather(t: Tensor, idx: Tensor) -> Tensor:
    """``t[idx]`` for ``t`` [N, C] and ``idx`` [n, K] via ``index_select``, [n, K, C]."""
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, t.size(-1))


class ChunkedNeighbourFunction(torch.autograd.Function):
    """See the module docstring. Returns ``(out [N, C_o], attn [N, K, H] or [0])``.

    ``apply(kernel, chunk, want, n_dst, n_src, nbr_idx, nbr_mask, *tensors)`` with
    ``tensors`` = ``n_dst`` per-point tensors of the centres, ``n_src`` per-point
    tensors gathered over the neighbours, then the parameters the kernel uses;
    ``nbr_mask=None`` means every entry is valid.
    """

    @staticmethod
    def forward(ctx: Any, kernel: Kernel, chunk: int, want: bool, n_dst: int,
                n_src: int, nbr_idx: Tensor, nbr_mask: Tensor | None,
                *tensors: Tensor) -> tuple[Tensor, Tensor]:
        dst, src = tensors[:n_dst], tensors[n_dst:n_dst + n_src]
        n = nbr_idx.size(0)
        outs, attns = [], []
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            idx = nbr_idx[s:e]  # [n, K]
            src_j = [_gather(t, idx) for t in src]  # [n, K, C_s] each
            mask = nbr_mask[s:e] if nbr_mask is not None else None
            o, a = kernel([t[s:e] for t in dst], src_j, mask, want)  # [n, C_o]
            outs.append(o)
            if want and a is not None:
                attns.append(a)
        out = torch.cat(outs) if len(outs) > 1 else outs[0]  # [N, C_o]
        attn = torch.cat(attns) if attns else out.new_zeros(0)  # [N, K, H]
        ctx.kernel, ctx.chunk, ctx.n_dst, ctx.n_src = kernel, chunk, n_dst, n_src
        ctx.has_mask = nbr_mask is not None
        ctx.save_for_backward(nbr_idx, nbr_mask if nbr_mask is not None else nbr_idx,
                              *tensors)
        ctx.mark_non_differentiable(attn)
        return out, attn

    @staticmethod
    def backward(ctx: Any, g_out: Tensor, g_attn: Tensor
                 ) -> tuple[Tensor | None, ...]:
        nbr_idx, nbr_mask, *tensors = ctx.saved_tensors
        nbr_mask = nbr_mask if ctx.has_mask else None
        nd, ns = ctx.n_dst, ctx.n_src
        need = list(ctx.needs_input_grad[7:])
        grads: list[Tensor | None] = [
            torch.zeros_like(t) if nd_ else None for t, nd_ in zip(tensors, need)]
        params = tensors[nd + ns:]
        wanted_p = [p for p, nd_ in zip(params, need[nd + ns:]) if nd_]
        n = nbr_idx.size(0)
        g_out = g_out.contiguous()
        for s in range(0, n, ctx.chunk):
            e = min(n, s + ctx.chunk)
            idx = nbr_idx[s:e]  # [n, K]
            with torch.enable_grad():
                dst = [t[s:e].detach().requires_grad_(nd_)
                       for t, nd_ in zip(tensors[:nd], need[:nd])]  # [n, C_d] each
                src_j = [_gather(t, idx).detach().requires_grad_(nd_)
                         for t, nd_ in zip(tensors[nd:nd + ns], need[nd:nd + ns])]
                mask = nbr_mask[s:e] if nbr_mask is not None else None
                o, _ = ctx.kernel(dst, src_j, mask, False)  # [n, C_o]
                leaves = [t for t, nd_ in zip(dst + src_j, need[:nd + ns]) if nd_]
                inputs = leaves + wanted_p
                if not inputs:
                    break
                gs = torch.autograd.grad(o, inputs, g_out[s:e], allow_unused=True)
            it = iter(gs)
            for i in range(nd + ns):
                if not need[i]:
                    continue
                g = next(it)
                if g is None:
                    continue
                if i < nd:
                    grads[i][s:e] = g  # type: ignore[index]
                else:  # scatter the gathered gradient back, [n*K, C_s]
                    grads[i].index_add_(  # type: ignore[union-attr]
                        0, idx.reshape(-1), g.reshape(-1, g.size(-1)))
            for i in range(nd + ns, len(tensors)):
                if need[i]:
                    g = next(it)
                    if g is not None:
                        grads[i].add_(g)  # type: ignore[union-attr]
        return (None, None, None, None, None, None, None, *grads)


def _batch_dependent(modules: Sequence[nn.Module]) -> bool:
    """Whether a module normalises with batch statistics right now.

    A BatchNorm in training mode would see one block at a time on the fused path
    (statistics per block, not per batch) and update its running statistics
    twice (forward and the recomputation in backward), so such a layer takes the
    plain path: the same values as ``fused=False``, with its memory cost.
    """
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
               for mod in modules for m in mod.modules())


def chunked_neighbour_apply(kernel: Callable[..., tuple[Tensor, Tensor | None]],
                            dst: Tensor | Sequence[Tensor],
                            src: Tensor | Sequence[Tensor], nbr_idx: Tensor,
                            nbr_mask: Tensor, modules: Sequence[nn.Module], *,
                            chunk: int, want: bool = False, fused: bool = True,
                            drop_full_mask: bool = False
                            ) -> tuple[Tensor, Tensor | None]:
    r"""Run ``kernel`` over the neighbourhoods of all points.

    Computes ``kernel(dst, [t[nbr_idx] for t in src], nbr_mask, want)`` either in
    one piece under plain autograd (``fused=False``, the reference) or through
    :class:`ChunkedNeighbourFunction` (``fused=True``), which keeps no
    ``[N, K, C]`` tensor for backward. ``dst`` and ``src`` are each one tensor
    (the kernel then gets tensors) or a list of tensors (the kernel gets lists).
    With ``drop_full_mask=True`` an all-true mask reaches the kernel as ``None``.

    Args:
        kernel: ``(dst [n, C_d] each, src_j [n, K, C_s] each, mask [n, K] or None,
            want) -> (out [n, C_o], attn [n, K, H] or None)``; row-wise in the
            points.
        dst: Per-point tensors of the centre points, each :math:`(N, C_d)`.
        src: Per-point tensors gathered over the neighbours, each :math:`(N, C_s)`.
        nbr_idx: :math:`(N, K)` int64.
        nbr_mask: :math:`(N, K)` bool.
        modules: The modules whose parameters ``kernel`` uses.
        chunk: Points per block (fused path).
        want: Also return the kernel's attention weights.
        fused: Use the chunked recomputing path (not taken while a BatchNorm
            inside ``modules`` is in training mode, see :func:`_batch_dependent`).
        drop_full_mask: Pass ``None`` for an all-true mask (one host sync).

    Returns:
        ``(out [N, C_o], attn [N, K, H] or None)``
    """
    if isinstance(dst, Tensor) != isinstance(src, Tensor):
        raise TypeError("dst and src must both be tensors or both be lists")
    if isinstance(dst, Tensor):
        single = kernel

        def kernel(d: Sequence[Tensor], s: Sequence[Tensor], m: Tensor | None,
                   w: bool) -> tuple[Tensor, Tensor | None]:
            return single(d[0], s[0], m, w)

        dst, src = [dst], [src]  # type: ignore[list-item]
    mask: Tensor | None = nbr_mask
    traced = tracing()  # export/compile: one plain block, no value-dependent branch
    if drop_full_mask and not traced and bool(nbr_mask.all()):
        mask = None
    if not fused or traced or _batch_dependent(modules):
        return kernel(list(dst), [t[nbr_idx] for t in src], mask, want)  # [N, K, C_s]
    params = [p for m in modules for p in m.parameters()]
    out, attn = ChunkedNeighbourFunction.apply(
        kernel, chunk, want, len(dst), len(src), nbr_idx, mask, *dst, *src, *params)
    return out, (attn if want else None)
