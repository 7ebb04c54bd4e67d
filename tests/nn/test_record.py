import torch
from torch import nn

from pointsam.nn import (
    CBAM,
    AttentionBlock,
    ChannelGate,
    MultiBranchAttention,
    MultiHeadPointAttention,
    PointGate,
    record_attention,
)


class Net(nn.Module):
    """A plain container, no attention API of its own: the recorder must still find
    every PointModule inside it."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(3, 16)
        self.blocks = nn.ModuleList([
            AttentionBlock(CBAM(16, reduction=4, k=4)),
            AttentionBlock(MultiBranchAttention(
                [ChannelGate(16, reduction=4), PointGate(16, k=4)], num_heads=4)),
            AttentionBlock(MultiHeadPointAttention(16, num_heads=4)),
        ])
        self.head = nn.Linear(16, 5)

    def forward(self, pos, batch):
        x = self.stem(pos)
        for blk in self.blocks:
            x = blk(x, pos, batch)
        return self.head(x)


def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(25, 3, generator=g), torch.tensor([0] * 10 + [1] * 15)


def test_records_every_module_of_a_nested_model():
    net = Net().eval()
    pos, batch = data()
    plain = net(pos, batch)
    with record_attention(net) as rec:
        out = net(pos, batch)
    # recording does not change the result (MHA takes its plain path: rounding only)
    assert torch.allclose(out, plain, atol=1e-5)
    assert sorted(rec) == [
        "blocks.0.module", "blocks.0.module.channel", "blocks.0.module.point",
        "blocks.1.module", "blocks.1.module.branches.0",
        "blocks.1.module.branches.1", "blocks.1.module.fuse", "blocks.2.module"]
    assert rec["blocks.0.module"]["channel"].shape == (2, 16)
    assert rec["blocks.0.module.point"]["point"].shape == (25, 1)
    mb = rec["blocks.1.module"]
    assert sorted(mb) == ["a", "branches.0.channel", "branches.1.point"]
    assert mb["a"].shape == (25, 4, 2)
    assert torch.equal(mb["a"], rec["blocks.1.module.fuse"]["a"])
    assert rec["blocks.2.module"]["attn"].shape == (2, 4, 15, 15)
    assert all(not t.requires_grad for d in rec.values() for t in d.values())


def test_recorded_equals_returned_weights():
    net = Net().eval()
    pos, batch = data()
    with record_attention(net) as rec:
        net(pos, batch)
    blk = net.blocks[0]
    x = net.stem(pos)
    _, attn = blk(x, pos, batch, return_attention=True)
    assert torch.allclose(attn["point"], rec["blocks.0.module"]["point"])
    assert torch.allclose(attn["channel"], rec["blocks.0.module.channel"]["channel"])


def test_keeps_graph_when_asked_and_only_inside_the_context():
    net = Net().train()
    pos, batch = data()
    with record_attention(net, detach=False) as rec:
        net(pos, batch)
    w = rec["blocks.0.module.point"]["point"]
    assert w.requires_grad
    w.sum().backward()
    assert net.blocks[0].module.point.kernel.lins[0].weight.grad is not None
    net(pos, batch)  # outside the context: nothing more recorded
    assert len(rec.calls["blocks.0.module"]) == 1


def test_submodule_recording_only_sees_its_own_modules():
    net = Net().eval()
    pos, batch = data()
    with record_attention(net.blocks[0]) as rec:
        net(pos, batch)
    assert sorted(rec) == ["module", "module.channel", "module.point"]
