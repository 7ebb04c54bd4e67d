"""The attention-module protocol declared on PointModule, and who reads it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pointsam.models import DGCNN
from pointsam.models.attention import ATTENTION, GATES, apply_attention
from pointsam.nn import (
    CBAM,
    AttentionBlock,
    AxialAttention,
    ChannelGate,
    CrossModalAttention,
    LocalAttention,
    MultiBranchAttention,
    PointGate,
    PointModule,
    TemporalAttention,
    channels_of,
    is_gate,
    takes_neighbours,
)


@pytest.mark.parametrize("name", sorted(ATTENTION))
def test_every_table_module_declares_its_channels(name):
    m = ATTENTION[name](16)
    assert channels_of(m) == (16, 16)
    assert isinstance(m.in_channels, int) and isinstance(m.out_channels, int)


def test_declared_facts():
    assert set(GATES) == {ChannelGate, PointGate, CBAM}
    assert all(is_gate(c(8)) for c in GATES)
    assert not is_gate(LocalAttention(8, num_heads=2)) and not is_gate(nn.Identity())
    assert not AxialAttention.accepts_neighbours and LocalAttention.accepts_neighbours
    assert not takes_neighbours(AxialAttention(8, num_heads=2))
    assert takes_neighbours(nn.Identity())  # a plain module: the standard signature
    assert TemporalAttention.extra_inputs == {"past_x", "past_pos", "past_batch"}
    assert "tokens" in CrossModalAttention.extra_inputs
    blk = AttentionBlock(AxialAttention(8, num_heads=2))
    assert not blk.accepts_neighbours and not is_gate(AttentionBlock(CBAM(8)))
    assert AttentionBlock(TemporalAttention(8, num_heads=2)).extra_inputs == \
        TemporalAttention.extra_inputs


def test_channels_of_foreign_modules():
    assert channels_of(nn.Conv1d(3, 8, 1)) == (3, 8)
    assert channels_of(nn.Linear(3, 8)) == (None, None)  # in_features: not ours


def test_check_forward_one_message_for_every_module():
    pos = torch.randn(10, 3)
    for m in [ChannelGate(8), PointGate(8, k=3), LocalAttention(8, num_heads=2, k=3),
              AxialAttention(8, num_heads=2, k=3)]:
        with pytest.raises(ValueError,
                           match=f"{type(m).__name__} needs point features x, got None"):
            m(None, pos)


def test_plugin_reads_the_declared_table_fact():
    seen = []

    class OwnTable(PointModule):
        accepts_neighbours = False
        in_channels = out_channels = 8

        def forward(self, x, pos, batch=None, nbr_idx=None, nbr_mask=None):
            seen.append(nbr_idx)
            return torch.zeros_like(x)

    x, pos = torch.randn(12, 8), torch.randn(12, 3)
    idx = torch.zeros(12, 2, dtype=torch.long)
    out = apply_attention(OwnTable(), x, pos, None, idx, idx.bool())
    assert seen == [None] and torch.equal(out, x)  # residual: x + 0
    gate = ChannelGate(8)
    assert torch.equal(apply_attention(gate, x, pos, None, None, None), gate(x, pos))


def test_multi_branch_keeps_the_shared_table_from_axial():
    # with k set, the shared table goes to LocalAttention but not to Axial,
    # which declares accepts_neighbours = False (it used to raise here)
    torch.manual_seed(0)
    loc, ax = LocalAttention(8, num_heads=2, k=3), AxialAttention(8, num_heads=2, k=3)
    mb = MultiBranchAttention([loc, ax], num_heads=2, k=3).eval()
    x, pos = torch.randn(20, 8), torch.randn(20, 3)
    out = mb(x, pos)
    assert torch.allclose(out, mb.fuse([loc(x, pos), ax(x, pos)]), atol=1e-6)


def test_dgcnn_with_axial_attention_runs():
    net = DGCNN(channels=[[8]], k=4, emb_channels=8,
                attention={"name": "axial", "num_heads": 2, "k": 3}).eval()
    assert net(None, torch.randn(20, 3)).shape == (1, 16)


@pytest.mark.slow
def test_no_graph_break_inside_trusted():
    # called directly, the value checks (host syncs) break the graph; inside
    # ops.trusted (how a backbone calls its modules) nothing does
    from pointsam import ops

    m = PointGate(16, k=4).eval()
    x, pos = torch.randn(64, 16), torch.randn(64, 3)
    idx, mask = ops.knn(pos, 4)
    torch._dynamo.reset()
    assert torch._dynamo.explain(m)(x, pos, None, idx, mask).graph_break_count > 0
    torch._dynamo.reset()
    with ops.trusted():
        e = torch._dynamo.explain(m)(x, pos, None, idx, mask)
    assert e.graph_break_count == 0
    with ops.trusted():
        assert torch.allclose(torch.compile(m)(x, pos, None, idx, mask),
                              m(x, pos, None, idx, mask), atol=1e-6)
