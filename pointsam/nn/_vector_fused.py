r"""Point Transformer vector attention with a hand-written, blockwise backward.

The fast path of :class:`~pointsam.nn.LocalAttention` ``(mode="vector")`` when its
``pos_nn`` (:math:`\theta`) and ``attn_nn`` (:math:`\gamma`) are plain
Linear/ReLU chains (:func:`~pointsam.nn.common.linear_chain`). For every point i
and its neighbours j (``nbr_idx``, masked by ``nbr_mask``) the layer computes

.. math::
    \delta_{ij} = \theta(\mathbf{p}_i - \mathbf{p}_j),\quad
    \alpha_{ij} = \mathrm{softmax}_j\big(\gamma(\mathbf{d}_i - \mathbf{s}_j
    + \delta_{ij})\big),\quad
    \mathbf{o}_i = \sum_j \alpha_{ij} \odot (\mathbf{v}_j + \delta_{ij})

(``d`` = ``lin_dst x``, ``s`` = ``lin_src x``, ``v`` = ``lin x``). With
:math:`\gamma`'s first layer :math:`\mathbf{h} \mapsto \sigma(\mathbf{A}\mathbf{h}
+ \mathbf{c})`, its pre-activation splits into per-point and per-pair parts,

.. math::
    \mathbf{A}(\mathbf{d}_i - \mathbf{s}_j + \delta_{ij}) + \mathbf{c}
    = \mathbf{u}_i + \mathbf{w}_j + \mathbf{A}\delta_{ij},\qquad
    \mathbf{u} = \mathbf{A}\mathbf{d} + \mathbf{c},\ \mathbf{w} = -\mathbf{A}\mathbf{s},

so the caller computes ``u`` and ``w`` per point, under ordinary autograd, and
:class:`VectorAttentionFunction` gets ``u``, ``[w | v]`` and ``A`` (``A = None``:
:math:`\gamma` is the identity, ``u = d``, ``w = -s``). Like the generic
:class:`~pointsam.nn._chunked.ChunkedNeighbourFunction` it runs blocks of
``chunk`` points, saves only per-point tensors and recomputes the ``[n, K, C]``
intermediates block by block in backward. Unlike it:

- the gradients are written out instead of obtained by re-running the forward
  graph under autograd. With :math:`\mathbf{g}_i` the output gradient,
  :math:`\partial L/\partial(\mathbf{v}_j + \delta_{ij}) = \alpha_{ij} \odot
  \mathbf{g}_i` and, since :math:`\sum_j \alpha_{ij} \odot (\mathbf{v}_j +
  \delta_{ij}) = \mathbf{o}_i` (saved from forward), the softmax backward is
  :math:`\partial L/\partial \mathrm{logit}_{ij} = \alpha_{ij} \odot
  \mathbf{g}_i \odot (\mathbf{v}_j + \delta_{ij} - \mathbf{o}_i)`, with no
  reduction over j;
- ``w`` and ``v`` are gathered by one ``index_select`` and their gradients
  scattered back by one ``index_add_``; sums go into matrix products
  (``addmm_``: :math:`\mathbf{u}_i + \mathbf{w}_j` plus :math:`\mathbf{A}\delta`,
  the gradient of :math:`\delta` from both of its uses) and weight gradients
  accumulate in place;
- every ``[n, K, C]`` temporary lives in a workspace allocated once per call and
  reused by every block (``out=`` and in-place ops): on the CPU a fresh 2 MiB
  tensor costs about as much as a pass over it, in page faults.

Values and gradients equal those of the plain path to float tolerance (tested,
with ``gradcheck`` in float64).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .common import Layer

__all__ = ["VectorAttentionFunction", "fused_vector_attention"]

_Spec = tuple[tuple[bool, bool], ...]  # (has_bias, relu) per layer


class _Workspace:
    """Flat buffers, one per name, handed out as ``[rows, width]`` views."""

    def __init__(self, rows: int, like: Tensor) -> None:
        self.rows, self.like = rows, like
        self.bufs: dict[str, Tensor] = {}
        self.views: dict[tuple[str, int, int], Tensor] = {}

    def get(self, name: str, rows: int, width: int) -> Tensor:
        view = self.views.get((name, rows, width))
        if view is None:
            buf = self.bufs.get(name)
            if buf is None:
                buf = self.bufs[name] = self.like.new_empty(self.rows * width)
            view = self.views[name, rows, width] = buf[:rows * width].view(rows, width)
        return view  # [rows, width]


def _chain(x: Tensor, layers: Sequence[Layer], ws: _Workspace, tag: str
           ) -> list[Tensor]:
    """Outputs of every layer of a chain on ``x`` [R, C_0], in ``ws`` buffers."""
    outs = []
    for i, (w, b, relu) in enumerate(layers):
        y = ws.get(f"{tag}{i}", x.size(0), w.size(0))  # [R, C_l]
        if b is not None:
            torch.addmm(b, x, w.t(), out=y)
        else:
            torch.mm(x, w.t(), out=y)
        if relu:
            y.relu_()
        outs.append(y)
        x = y
    return outs


def _chain_backward(g: Tensor, inputs: Sequence[Tensor], outs: Sequence[Tensor],
                    layers: Sequence[Layer], grads: Sequence[Tensor | None],
                    in_grad: Tensor | None, ws: _Workspace, tag: str) -> None:
    """Back through a chain whose output gradient is ``g`` [R, C_L] (overwritten).

    Accumulates the weight and bias gradients into ``grads`` (two entries per
    layer, None where not needed) and writes the input gradient into
    ``in_grad`` (skipped when None).
    """
    for i in range(len(layers) - 1, -1, -1):
        w, _, relu = layers[i]
        if relu:  # ReLU backward from its output, in place
            torch.ops.aten.threshold_backward.grad_input(g, outs[i], 0, grad_input=g)
        gw, gb = grads[2 * i], grads[2 * i + 1]
        if gw is not None:
            gw.addmm_(g.t(), inputs[i])  # [C_l, C_{l-1}]
        if gb is not None:
            gb.add_(g.sum(0))  # [C_l]
        if i > 0:
            g = torch.mm(g, w, out=ws.get(f"{tag}{i}", g.size(0), w.size(1)))
        elif in_grad is not None:
            torch.mm(g, w, out=in_grad)


class _Block:
    """The intermediates of the points ``s:e`` (views into the workspace,
    overwritten by the next block): ``r`` [R, 3] ``p_i - p_j``; ``z`` theta's
    layer outputs (``delta`` last); ``gath`` [R, H + C] ``[w_j | v_j]``, whose
    first H columns become ``y[0]``, gamma's first layer output, and whose last
    C become ``v_j + delta``; ``y`` gamma's layer outputs (the logits last);
    ``a`` [R, C] the softmax weights."""

    def __init__(self, s: int, e: int, nbr_idx: Tensor, drop: Tensor | None,
                 u: Tensor, wv: Tensor, pos: Tensor, a1: Tensor | None,
                 first_relu: bool, pos_layers: Sequence[Layer],
                 rest_layers: Sequence[Layer], ws: _Workspace) -> None:
        m, k = e - s, nbr_idx.size(1)
        rows, hid = m * k, u.size(1)
        c = wv.size(1) - hid
        self.idx = idx = nbr_idx[s:e].reshape(-1)  # [R]
        r = torch.index_select(pos, 0, idx, out=ws.get("r", rows, 3))  # p_j [R, 3]
        torch.sub(pos[s:e].unsqueeze(1), r.view(m, k, 3), out=r.view(m, k, 3))
        self.r = r  # p_i - p_j
        self.z = _chain(r, pos_layers, ws, "z")
        delta = self.z[-1]  # [R, C]
        gath = torch.index_select(wv, 0, idx, out=ws.get("wv", rows, hid + c))
        self.gath = gath  # [R, H + C]
        y0 = gath[:, :hid]  # w_j, [R, H]
        y0.view(m, k, hid).add_(u[s:e].unsqueeze(1))  # + u_i
        if a1 is not None:
            y0.addmm_(delta, a1.t())  # + A delta
        else:
            y0.add_(delta)
        if first_relu:
            y0.relu_()
        self.y = [y0] + _chain(y0, rest_layers, ws, "y")
        logits = self.y[-1].view(m, k, c)  # [n, K, C]
        if drop is not None:
            logits.masked_fill_(drop[s:e].unsqueeze(-1), float("-inf"))
        a = ws.get("a", rows, c)
        torch.ops.aten._softmax.out(logits, 1, False, out=a.view(m, k, c))  # over j
        self.a = a
        self.vd = gath[:, hid:].add_(delta)  # v_j + delta, [R, C]


class VectorAttentionFunction(torch.autograd.Function):
    """``apply(specs, chunk, nbr_idx, nbr_mask, u, wv, pos, a1, *params) -> o``.

    ``u`` [N, H], ``wv`` [N, H + C] (``w`` then ``v``), ``pos`` [N, 3], ``a1``
    [H, C] or None (module docstring); ``specs = (pos_spec, rest_spec,
    first_relu)``: ``(has_bias, relu)`` per layer of theta and of gamma after its
    first layer, and whether a ReLU follows gamma's first layer; ``params`` are
    the weights and biases of those layers, layer by layer (no entry for a
    missing bias). ``nbr_mask=None``: every entry is valid. Returns ``o`` [N, C].
    """

    @staticmethod
    def forward(ctx: Any, specs: tuple[_Spec, _Spec, bool], chunk: int,
                nbr_idx: Tensor, nbr_mask: Tensor | None, u: Tensor, wv: Tensor,
                pos: Tensor, a1: Tensor | None, *params: Tensor) -> Tensor:
        pos_layers, rest_layers = _layers(specs, params)
        n, k = nbr_idx.shape
        hid = u.size(1)
        c = wv.size(1) - hid
        out = u.new_empty(n, c)  # [N, C]
        ws = _Workspace(min(n, chunk) * k, u)
        drop = None if nbr_mask is None else ~nbr_mask  # [N, K]
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            blk = _Block(s, e, nbr_idx, drop, u, wv, pos, a1, specs[2], pos_layers,
                         rest_layers, ws)
            prod = blk.a.mul_(blk.vd).view(e - s, k, c)  # [n, K, C]
            torch.sum(prod, 1, out=out[s:e])  # [n, C]
        ctx.specs, ctx.chunk, ctx.has_mask = specs, chunk, nbr_mask is not None
        # a copy of o: the caller may change the returned tensor in place
        # (``out += x``), as it may with the plain path
        ctx.save_for_backward(nbr_idx, nbr_idx if nbr_mask is None else nbr_mask,
                              u, wv, pos, out.clone(), a1, *params)
        return out

    @staticmethod
    def backward(ctx: Any, g_out: Tensor) -> tuple[Tensor | None, ...]:
        nbr_idx, nbr_mask, u, wv, pos, out, a1, *params = ctx.saved_tensors
        specs, chunk = ctx.specs, ctx.chunk
        pos_layers, rest_layers = _layers(specs, params)
        need = ctx.needs_input_grad  # 0 specs, 1 chunk, 2 idx, 3 mask, 4 u, ...
        n, k = nbr_idx.shape
        hid = u.size(1)
        c = wv.size(1) - hid
        g_out = g_out.contiguous()
        g_u = torch.empty_like(u) if need[4] else None  # [N, H]
        g_wv = torch.zeros_like(wv) if need[5] else None  # [N, H + C]
        g_pos = torch.zeros_like(pos) if need[6] else None  # [N, 3]
        g_a1 = torch.zeros_like(a1) if need[7] else None  # [H, C]
        flags = iter(need[8:])  # per parameter
        p_grads: list[Tensor | None] = []
        r_grads: list[Tensor | None] = []
        for layers, grads in ((pos_layers, p_grads), (rest_layers, r_grads)):
            for w, b, _ in layers:  # two entries per layer: weight, bias
                grads.append(torch.zeros_like(w) if next(flags) else None)
                grads.append(None if b is None else
                             torch.zeros_like(b) if next(flags) else None)
        ws = _Workspace(min(n, chunk) * k, u)
        drop = ~nbr_mask if ctx.has_mask else None  # [N, K]
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            m, rows = e - s, (e - s) * k
            blk = _Block(s, e, nbr_idx, drop, u, wv, pos, a1, specs[2], pos_layers,
                         rest_layers, ws)
            g_gath = ws.get("g_wv", rows, hid + c)  # [R, H + C]: d/d[w_j | v_j]
            g1, g_vd = g_gath[:, :hid], g_gath[:, hid:]  # [R, H], [R, C]
            # d/d(v_j + delta) = a * g
            torch.mul(blk.a.view(m, k, c), g_out[s:e].unsqueeze(1),
                      out=g_vd.view(m, k, c))
            # softmax backward: d/dlogit = a * g * (v_j + delta - o_i)
            g_l = blk.vd.view(m, k, c).sub_(out[s:e].unsqueeze(1))  # [n, K, C]
            g_l = g_l.view(rows, c).mul_(g_vd)  # [R, C]
            # gamma after its first layer, down to d/dy0 in g1
            if rest_layers:
                _chain_backward(g_l, blk.y[:-1], blk.y[1:], rest_layers, r_grads,
                                g1, ws, "gy")
            else:
                g1.copy_(g_l)
            if specs[2]:  # the first layer's ReLU
                torch.ops.aten.threshold_backward.grad_input(g1, blk.y[0], 0,
                                                             grad_input=g1)
            delta = blk.z[-1]
            if g_u is not None:  # u_i enters every pair of row i
                torch.sum(g1.view(m, k, hid), 1, out=g_u[s:e])
            if g_a1 is not None:
                g_a1.addmm_(g1.t(), delta)  # [H, C]
            if g_wv is not None:  # w_j and v_j enter their pairs once each
                g_wv.index_add_(0, blk.idx, g_gath)
            # delta enters gamma (through A) and v_j + delta
            g_delta = g_vd.addmm_(g1, a1) if a1 is not None else g_vd.add_(g1)
            g_r = ws.get("g_r", rows, 3) if g_pos is not None else None
            _chain_backward(g_delta, [blk.r] + blk.z[:-1], blk.z, pos_layers,
                            p_grads, g_r, ws, "gz")
            if g_pos is not None and g_r is not None:
                g_pos[s:e] += g_r.view(m, k, 3).sum(1)  # p_i enters r_ij with +1
                g_pos.index_add_(0, blk.idx, g_r, alpha=-1)  # p_j with -1
        flat = [g for layers, gs in ((pos_layers, p_grads), (rest_layers, r_grads))
                for i, (_, b, _) in enumerate(layers)
                for g in (gs[2 * i], gs[2 * i + 1])[:1 if b is None else 2]]
        return (None, None, None, None, g_u, g_wv, g_pos, g_a1, *flat)


def _layers(specs: tuple[_Spec, _Spec, bool], params: Sequence[Tensor]
            ) -> tuple[list[Layer], list[Layer]]:
    it = iter(params)
    pos_layers, rest_layers = (
        [(next(it), next(it) if has_bias else None, relu) for has_bias, relu in spec]
        for spec in specs[:2])
    return pos_layers, rest_layers


def fused_vector_attention(x: Tensor, w_dst: Tensor, w_src: Tensor, w_v: Tensor,
                           pos: Tensor, nbr_idx: Tensor, nbr_mask: Tensor | None,
                           pos_layers: Sequence[Layer], attn_layers: Sequence[Layer],
                           *, chunk: int) -> Tensor:
    r"""Vector attention of every point over its neighbours (module docstring),
    with ``d = x w_dst^T``, ``s = x w_src^T``, ``v = x w_v^T``.

    Args:
        x: :math:`(N, C_{in})`.
        w_dst: :math:`(C, C_{in})`, ``lin_dst.weight`` (likewise ``w_src``, ``w_v``).
        pos: :math:`(N, 3)`.
        nbr_idx: :math:`(N, K)` int64.
        nbr_mask: :math:`(N, K)` bool, or None when every entry is valid.
        pos_layers: :math:`\theta` as :func:`~pointsam.nn.common.linear_chain`
            layers, :math:`3 \to C` (at least one layer).
        attn_layers: :math:`\gamma`, :math:`C \to C` (empty: the identity).
        chunk: Points per block.

    Returns:
        :math:`(N, C)`
    """
    lin = torch.nn.functional.linear
    if attn_layers:
        a1, c1, first_relu = attn_layers[0]
        u = lin(x, a1 @ w_dst, c1)  # A d + c, [N, H]
        wv = lin(x, torch.cat([-(a1 @ w_src), w_v]))  # [-A s | v], [N, H + C]
        rest = attn_layers[1:]
    else:
        a1, first_relu, rest = None, False, []
        u = lin(x, w_dst)  # d, [N, C]
        wv = lin(x, torch.cat([-w_src, w_v]))  # [-s | v], [N, 2C]
    params: list[Tensor] = []
    specs = []
    for layers in (pos_layers, rest):
        specs.append(tuple((b is not None, relu) for _, b, relu in layers))
        params += [t for w, b, _ in layers for t in (w, b) if t is not None]
    return VectorAttentionFunction.apply((specs[0], specs[1], first_relu), chunk,
                                         nbr_idx, nbr_mask, u, wv, pos, a1, *params)
