r"""Temporal attention: points of the current frame attend to earlier frames."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from torch import Tensor, nn

from .. import ops
from ._chunked import chunked_neighbour_apply, default_chunk
from .base import PointModule, WeightKind
from .common import MLP, Device, check_inputs, reset_children
from .network import tracing

__all__ = ["TemporalAttention"]


def sinusoidal_encoding(t: Tensor, channels: int) -> Tensor:
    r"""Transformer sinusoidal encoding of (possibly fractional) times ``t``.

    .. math::
        \mathrm{enc}(t)_{2i} = \sin(t\,\omega_i),\quad
        \mathrm{enc}(t)_{2i+1} = \cos(t\,\omega_i),\quad
        \omega_i = 10000^{-2i/C}

    Example:
        >>> sinusoidal_encoding(torch.tensor([0., 1.]), 4).shape
        torch.Size([2, 4])
    """
    half = (channels + 1) // 2
    freq = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32)
                     * (-2.0 * math.log(10000.0) / channels))  # [C/2]
    ang = t.float().unsqueeze(-1) * freq  # [T, C/2]
    enc = torch.stack([ang.sin(), ang.cos()], dim=-1).flatten(-2)  # [T, 2 * C/2]
    return enc[..., :channels]


class TemporalAttention(PointModule):
    r"""Multi-head attention of each point of frame :math:`t` over its k
    nearest points in each of the T previous frames (multi-scan LiDAR: tells
    moving from static objects).

    The frames must already be in one coordinate frame (scans registered with
    their poses). For past frame :math:`\tau = 1 \dots T` (frame
    :math:`t - \tau`), :math:`\mathcal{N}^\tau_k(i)` are the k points of that
    frame nearest to :math:`\mathbf{p}_i`, in the same cloud (sample) as i.
    With the relative-position encoding
    :math:`\delta_{ij} = \theta(\mathbf{p}_j - \mathbf{p}_i)` and the time
    encoding :math:`\mathbf{e}_\tau` (a learned table when ``num_frames`` is
    given, else a learned linear map of the sinusoidal encoding of
    :math:`\tau`), per head :math:`h` of width :math:`D = C / H`:

    .. math::
        \mathbf{q}_i = \mathbf{W}_q \mathbf{x}_i,\quad
        \mathbf{k}_{j} = \mathbf{W}_k \mathbf{x}^\tau_j + \delta_{ij}
        + \mathbf{e}_\tau,\quad
        \mathbf{v}_{j} = \mathbf{W}_v \mathbf{x}^\tau_j + \delta_{ij}
        + \mathbf{e}_\tau

    .. math::
        a^h_{i,\tau j} = \mathrm{softmax}_{\tau, j \in \mathcal{N}^\tau_k(i)}
        \Big(\frac{\mathbf{q}^h_i \cdot \mathbf{k}^h_j}{\sqrt{D}}\Big),\qquad
        \mathbf{x}'_i = \mathbf{W}_o \big\Vert_h \sum_{\tau, j}
        a^h_{i,\tau j}\, \mathbf{v}^h_j

    The softmax runs jointly over all T k candidates. Only relative positions
    are used: a common translation of all frames leaves the output unchanged.

    The previous frames are passed as lists, most recent first:
    ``past_x[0]`` is frame :math:`t-1`, ``past_x[T-1]`` frame :math:`t-T`.
    Each past frame is a ragged batch of its own with the same samples
    (clouds) as the current frame: cloud b of ``past_batch[τ]`` is the same
    scene as cloud b of ``batch``, and every cloud of the current frame must
    have points in every past frame. A cloud with fewer than k points in a
    past frame is handled by masking.

    Args:
        channels: Feature size :math:`C` of current and past points (input and
            output), divisible by ``num_heads``.
        num_heads: Heads H. (default: 8)
        k: Neighbours per past frame. (default: 16)
        num_frames: Largest T accepted, with a learned time table
            :math:`\mathbf{e}_1 \dots \mathbf{e}_{T_{max}}`; ``None`` uses the
            sinusoidal encoding (any T). (default: ``None``)
        hidden_channels: Width of :math:`\theta`; ``None`` means C.
            (default: ``None``)
        fused: Run over blocks of ``chunk`` points and recompute each block in
            backward, so no :math:`(N, T k, C)` tensor is kept for backward;
            ``False`` is the plain one-piece autograd path, the reference.
            (default: ``True``)
        chunk: Points per block; ``None`` picks one from T k and C (blocks of
            about 2^19 elements on the CPU, 2^25 on a GPU). (default: ``None``)

    Shapes:
        - **input:** x :math:`(N, C)`, pos :math:`(N, 3)`, batch :math:`(N)`
          sorted (optional); keyword-only ``past_x`` list of T tensors
          :math:`(N_\tau, C)`, ``past_pos`` list of T :math:`(N_\tau, 3)`,
          ``past_batch`` list of T :math:`(N_\tau)` (required when ``batch``
          is given). ``nbr_idx`` / ``nbr_mask`` (current-frame neighbours) are
          accepted and ignored. ``past_index`` :math:`(N, T k)` int64 and
          ``past_mask`` :math:`(N, T k)` bool, optional: the candidates
          precomputed (a geometry plan: column :math:`\tau k + j` indexes the
          concatenated past frames, ``False`` where masked); the module then
          searches nothing, which is what lets it export.
        - **output:** :math:`(N, C)`; with ``return_attention=True`` also the
          dict ``{"attn": (N, T k, H), "nbr_pos": (N, T k, 3), "nbr_mask":
          (N, T k), "nbr_frame": (T k)}``: column :math:`\tau k + j` of
          ``attn`` is the weight of the j-th nearest point of past frame
          :math:`t - \tau - 1` (0 where masked; a row sums to 1 over the T k
          columns), ``nbr_pos`` that point's position (the frame of ``pos``),
          ``nbr_mask`` ``False`` where it is masked (a cloud with fewer than
          k points in that past frame), ``nbr_frame`` the :math:`\tau + 1`
          of each column (1 = the previous frame)

    Example:
        >>> ta = TemporalAttention(16, num_heads=4, k=4)
        >>> x, pos = torch.randn(30, 16), torch.randn(30, 3)
        >>> past_x = [torch.randn(25, 16), torch.randn(28, 16)]
        >>> past_pos = [torch.randn(25, 3), torch.randn(28, 3)]
        >>> out, attn = ta(x, pos, past_x=past_x, past_pos=past_pos,
        ...                return_attention=True)
        >>> out.shape, attn["attn"].shape, attn["nbr_pos"].shape
        (torch.Size([30, 16]), torch.Size([30, 8, 4]), torch.Size([30, 8, 3]))
    """

    extra_inputs = frozenset({"past_x", "past_pos", "past_batch"})
    weight_kinds = {"attn": WeightKind.TEMPORAL,  # [N, T k, H]
                    "nbr_pos": WeightKind.TABLE,  # [N, T k, 3]
                    "nbr_mask": WeightKind.TABLE,  # [N, T k]
                    "nbr_frame": WeightKind.TABLE}  # [T k]
    def __init__(self, channels: int, *, num_heads: int = 8, k: int = 16,
                 num_frames: int | None = None, hidden_channels: int | None = None,
                 fused: bool = True, chunk: int | None = None,
                 device: Device = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        ops.check_positive_int(channels, "channels")
        ops.check_positive_int(num_heads, "num_heads")
        ops.check_positive_int(k, "k")
        if num_frames is not None:
            ops.check_positive_int(num_frames, "num_frames")
        if channels % num_heads:
            raise ValueError(f"channels ({channels}) must be divisible by num_heads "
                             f"({num_heads})")
        hidden = channels if hidden_channels is None else hidden_channels
        ops.check_positive_int(hidden, "hidden_channels")
        dd = {"device": device, "dtype": dtype}
        self.channels = channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.k = k
        self.num_frames = num_frames
        self.fused = fused
        if chunk is not None:
            ops.check_positive_int(chunk, "chunk")
        self.chunk = chunk
        self.q = nn.Linear(channels, channels, **dd)
        self.kv = nn.Linear(channels, 2 * channels, **dd)
        self.pos_nn = MLP([3, hidden, channels], **dd)
        self.time_emb: nn.Embedding | None = None
        self.time_proj: nn.Linear | None = None
        if num_frames is not None:
            self.time_emb = nn.Embedding(num_frames, channels, **dd)
        else:
            self.time_proj = nn.Linear(channels, channels, **dd)
        self.proj = nn.Linear(channels, channels, **dd)
        self.reset_parameters()

    @property
    def in_channels(self) -> int:
        return self.channels

    @property
    def out_channels(self) -> int:
        return self.channels

    def reset_parameters(self) -> None:
        reset_children(self)
        if self.time_emb is not None:
            nn.init.normal_(self.time_emb.weight, std=0.02)

    def time_encoding(self, num_past: int, device: torch.device,
                      dtype: torch.dtype) -> Tensor:
        r"""The encodings :math:`\mathbf{e}_1 \dots \mathbf{e}_T`, :math:`(T, C)`."""
        if self.time_emb is not None:
            idx = torch.arange(num_past, device=device)  # [T]
            return self.time_emb(idx).to(dtype)  # [T, C]
        assert self.time_proj is not None
        tau = torch.arange(1, num_past + 1, device=device)  # [T]
        enc = sinusoidal_encoding(tau, self.channels).to(dtype)  # [T, C]
        return self.time_proj(enc)  # [T, C]

    def _check_past(self, x: Tensor, pos_dtype: torch.dtype, batch: Tensor | None,
                    past_x: Sequence[Tensor], past_pos: Sequence[Tensor],
                    past_batch: Sequence[Tensor | None] | None
                    ) -> list[Tensor | None]:
        for name, seq in (("past_x", past_x), ("past_pos", past_pos)):
            if isinstance(seq, Tensor) or not isinstance(seq, Sequence):
                raise ValueError(f"{name} must be a list of tensors (one per past "
                                 f"frame), got {type(seq).__name__}")
        t = len(past_x)
        if t == 0:
            raise ValueError("TemporalAttention needs at least one past frame "
                             "(past_x is empty)")
        if len(past_pos) != t:
            raise ValueError(f"past_x has {t} frames but past_pos has "
                             f"{len(past_pos)}")
        if self.num_frames is not None and t > self.num_frames:
            raise ValueError(f"got {t} past frames, more than num_frames="
                             f"{self.num_frames}")
        if past_batch is None:
            if batch is not None:
                raise ValueError("batch is given, so past_batch (one per past "
                                 "frame) is required")
            past_batch = [None] * t
        elif isinstance(past_batch, Tensor) or len(past_batch) != t:
            raise ValueError(f"past_batch must be a list of {t} tensors, one per "
                             f"past frame")
        out = list(past_batch)
        for tau, (fx, fp, fb) in enumerate(zip(past_x, past_pos, out)):
            if (fb is None) != (batch is None):
                raise ValueError(f"give both batch and past_batch[{tau}], or neither")
            try:
                check_inputs(fx, fp, fb, in_channels=self.channels, module=self)
            except ValueError as err:
                raise ValueError(f"past frame {tau}: {err}") from None
            if fx is None:
                raise ValueError(f"past_x[{tau}] is None")
            if fx.dtype != x.dtype or fx.device != x.device:
                raise ValueError(f"past_x[{tau}] is {fx.dtype} on {fx.device}, "
                                 f"x is {x.dtype} on {x.device}")
            if fp.dtype != pos_dtype:
                raise ValueError(f"past_pos[{tau}] is {fp.dtype} but pos is "
                                 f"{pos_dtype}; give every frame the same dtype")
        return out

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor | None = None,
                nbr_idx: Tensor | None = None, nbr_mask: Tensor | None = None, *,
                past_x: Sequence[Tensor], past_pos: Sequence[Tensor],
                past_batch: Sequence[Tensor | None] | None = None,
                past_index: Tensor | None = None, past_mask: Tensor | None = None,
                return_attention: bool = False
                ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        want = self.wants_attention(return_attention)
        x = self.check_forward(x, pos, batch)
        t, kk = len(past_x), self.k
        if (past_index is None) != (past_mask is None):
            raise ValueError("give both past_index and past_mask, or neither")
        if past_index is not None and past_mask is not None:  # the plan's tables
            if not ops.is_trusted():
                self._check_past(x, pos.dtype, batch, past_x, past_pos, past_batch)
                self._check_tables(past_index, past_mask, pos.size(0),
                                   sum(p.size(0) for p in past_pos), t)
            nbr, valid = past_index, past_mask  # [N, T k] each
        else:
            if tracing():
                raise RuntimeError("TemporalAttention searches the past frames "
                                   "inside forward, which does not export: give "
                                   "past_index/past_mask (a geometry plan)")
            pbatch = self._check_past(x, pos.dtype, batch, past_x, past_pos,
                                      past_batch)
            nbr, valid = self.search_past(pos, batch, past_pos, pbatch)
        all_x = torch.cat(list(past_x), dim=0)  # [P, C]
        all_pos = torch.cat(list(past_pos), dim=0)  # [P, 3]
        ct = torch.promote_types(x.dtype, pos.dtype)  # positions keep their precision
        dst = torch.cat([self.q(x).to(ct), pos.to(ct)], dim=1)  # [N, C + 3]
        src = torch.cat([self.kv(all_x).to(ct), all_pos.to(ct)], dim=1)  # [P, 2C + 3]
        modules = [m for m in (self.pos_nn, self.time_emb, self.time_proj)
                   if m is not None]
        budget = 1 << 25 if x.is_cuda else 1 << 19  # elements of one block temporary
        chunk = self.chunk or default_chunk(t * kk, 2 * self.channels, budget)
        kernel = partial(self._kernel, t, x.dtype)
        out, a = chunked_neighbour_apply(kernel, dst, src, nbr, valid, modules,
                                         chunk=chunk, want=want, fused=self.fused)
        out = self.proj(out)  # [N, C]
        rec = None
        if want and a is not None:  # the candidates, for the viewer (recording only)
            frames = torch.arange(1, t + 1, device=nbr.device)  # [T]
            rec = {"attn": a, "nbr_pos": all_pos.detach()[nbr],  # [N, T k, 3]
                   "nbr_mask": valid, "nbr_frame": frames.repeat_interleave(kk)}
        return self.finish(out, rec, return_attention)

    def search_past(self, pos: Tensor, batch: Tensor | None,
                past_pos: Sequence[Tensor], pbatch: Sequence[Tensor | None]
                ) -> tuple[Tensor, Tensor]:
        """The k nearest points of each past frame, [N, T k] indices into the
        concatenated past frames and [N, T k] validity: what ``forward``
        searches, and what a geometry plan passes as ``past_index`` /
        ``past_mask``."""
        b = ops.batch_size_of(batch)
        idx_list, mask_list, offset = [], [], 0
        for tau, pp in enumerate(past_pos):
            try:
                idx, msk = ops.knn(pp, self.k, pbatch[tau], query=pos,
                                   query_batch=batch, batch_size=b)  # [N, k]
            except ValueError as err:
                raise ValueError(f"past frame {tau}: {err} (every cloud of the "
                                 f"current frame needs points in every past "
                                 f"frame)") from None
            idx_list.append(idx + offset)
            mask_list.append(msk)
            offset += pp.size(0)
        return torch.cat(idx_list, dim=1), torch.cat(mask_list, dim=1)  # [N, T k]

    def _check_tables(self, index: Tensor, mask: Tensor, n: int, p: int,
                      t: int) -> None:
        tk = t * self.k
        if tuple(index.shape) != (n, tk) or tuple(mask.shape) != (n, tk):
            raise ValueError(f"past_index and past_mask must be [N, T k] = [{n}, "
                             f"{tk}], got {list(index.shape)} and "
                             f"{list(mask.shape)}")
        if index.dtype != torch.long or mask.dtype != torch.bool:
            raise ValueError(f"past_index must be int64 and past_mask bool, got "
                             f"{index.dtype} and {mask.dtype}")
        if index.numel() and bool(((index < 0) | (index >= p)).any()):
            raise ValueError(f"past_index holds values outside [0, {p}) (the "
                             f"points of the {t} past frames)")

    def _kernel(self, num_past: int, dtype: torch.dtype, dst: Tensor, src_j: Tensor,
                mask: Tensor, want: bool) -> tuple[Tensor, Tensor | None]:
        """The attention of a block of n points over their gathered candidates.

        ``dst`` [n, C + 3] holds (q_i, p_i), ``src_j`` [n, T k, 2C + 3] holds
        (k_j, v_j, p_j) before the encodings; returns ([n, C], [n, T k, H]).
        """
        c, h, d = self.channels, self.num_heads, self.head_dim
        n, tk = src_j.shape[:2]
        q = dst[:, :c].to(dtype).view(n, h, d)  # [n, H, D]
        rel_pos = (src_j[..., 2 * c:] - dst[:, c:].unsqueeze(1)).to(dtype)  # [n, Tk, 3]
        e = self.time_encoding(num_past, dst.device, dtype)  # [T, C]
        extra = self.pos_nn(rel_pos) + e.repeat_interleave(
            tk // num_past, dim=0)  # [n, Tk, C]
        kv = src_j[..., : 2 * c].to(dtype)  # [n, Tk, 2C]
        key = (kv[..., :c] + extra).view(n, tk, h, d)  # [n, Tk, H, D]
        val = (kv[..., c:] + extra).view(n, tk, h, d)  # [n, Tk, H, D]
        logits = torch.einsum("nhd,nkhd->nkh", q, key).float() * d ** -0.5  # [n, Tk, H]
        logits = logits.masked_fill(~mask.unsqueeze(-1), float("-inf"))
        a = logits.softmax(dim=1).to(dtype)  # [n, Tk, H]
        out = torch.einsum("nkh,nkhd->nhd", a, val).reshape(n, c)  # [n, C]
        return out, (a if want else None)

    def extra_repr(self) -> str:
        return (f"{self.channels}, num_heads={self.num_heads}, k={self.k}, "
                f"num_frames={self.num_frames}, fused={self.fused}")
