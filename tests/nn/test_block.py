import pytest
import torch
from torch import nn

from pointsam.nn import (
    CBAM,
    AttentionBlock,
    ChannelGate,
    MultiHeadPointAttention,
    PointGate,
    TemporalAttention,
)


@pytest.fixture
def cloud():
    g = torch.Generator().manual_seed(0)
    pos, x = torch.randn(30, 3, generator=g), torch.randn(30, 16, generator=g)
    return x, pos, torch.tensor([0] * 12 + [1] * 18)


MODULES = {
    "channel": lambda: ChannelGate(16, reduction=4),
    "point": lambda: PointGate(16, k=6),
    "cbam": lambda: CBAM(16, reduction=4, k=6),
    "mha": lambda: MultiHeadPointAttention(16, num_heads=4),
}


def make(name, **kw):
    return AttentionBlock(MODULES[name](), **kw).eval()


@pytest.mark.parametrize("name", list(MODULES))
def test_equals_definition(cloud, name):
    x, pos, batch = cloud
    blk = make(name, layer_scale=0.5)
    m = blk.module
    y = x + 0.5 * m(blk.norm1(x), pos, batch)
    ref = y + 0.5 * blk.mlp(blk.norm2(y))
    out = blk(x, pos, batch)
    assert out.shape == (30, 16)
    assert torch.allclose(out, ref, atol=1e-6)


def test_repr_and_options(cloud):
    x, pos, batch = cloud
    blk = make("cbam", mlp_ratio=2.0, layer_scale=1e-3, drop_path=0.1)
    r = repr(blk)
    assert "mlp_ratio=2.0" in r and "layer_scale=0.001" in r and "drop_path=0.1" in r
    assert blk.mlp.channels == [16, 32, 16]
    assert torch.equal(blk.gamma1, torch.full((16,), 1e-3))
    plain = make("cbam", mlp_ratio=0)
    assert plain.mlp is None and plain.gamma1 is None
    out = plain(x, pos, batch)
    assert torch.allclose(out, x + plain.module(plain.norm1(x), pos, batch), atol=1e-6)


@pytest.mark.parametrize("name", list(MODULES))
def test_gradients(cloud, name):
    x, pos, batch = cloud
    blk = make(name, layer_scale=1.0).train()
    blk(x, pos, batch).square().sum().backward()
    for n, p in blk.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), n


@pytest.mark.parametrize("name", list(MODULES))
def test_permutation_and_isolation(cloud, name):
    x, pos, batch = cloud
    blk = make(name)
    out = blk(x, pos, batch)
    perm = torch.cat([torch.randperm(12), 12 + torch.randperm(18)])
    assert torch.allclose(blk(x[perm], pos[perm], batch), out[perm], atol=1e-5)
    assert torch.allclose(blk(x[:12], pos[:12]), out[:12], atol=1e-5)
    assert torch.allclose(blk(x + 0, pos + 2.0, batch), out, atol=1e-5)


def test_passes_neighbours_and_attention(cloud):
    x, pos, batch = cloud
    blk = make("point")
    idx = torch.arange(30).unsqueeze(1)
    out, attn = blk(x, pos, batch, idx, return_attention=True)
    _, want = blk.module(blk.norm1(x), pos, batch, idx, return_attention=True)
    assert torch.allclose(attn["point"], want["point"])
    assert not torch.allclose(out, blk(x, pos, batch))  # the table was used
    assert torch.allclose(out, blk(x, pos, batch, nbr_idx=idx), atol=1e-6)


def test_passes_extra_kwargs():
    blk = AttentionBlock(TemporalAttention(16, num_heads=4, k=3)).eval()
    x, pos = torch.randn(10, 16), torch.randn(10, 3)
    px, pp = torch.randn(8, 16), torch.randn(8, 3)
    out, attn = blk(x, pos, past_x=[px], past_pos=[pp], return_attention=True)
    assert out.shape == (10, 16) and attn["attn"].shape == (10, 3, 4)
    y = x + blk.module(blk.norm1(x), pos, past_x=[px], past_pos=[pp])
    assert torch.allclose(out, y + blk.mlp(blk.norm2(y)), atol=1e-6)


def test_plain_module_without_attention_api(cloud):
    class Lin(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 16)
            self.out_channels = 16

        def forward(self, x, pos, batch=None):
            return self.lin(x)

    x, pos, batch = cloud
    blk = AttentionBlock(Lin())
    out, attn = blk(x, pos, batch, return_attention=True)
    assert attn == {} and out.shape == (30, 16)


def test_drop_path_per_cloud(cloud):
    x, pos, batch = cloud
    blk = make("channel", drop_path=0.5, mlp_ratio=0).train()
    branch = blk.module(blk.norm1(x), pos, batch)
    seen = set()
    for seed in range(20):
        torch.manual_seed(seed)
        delta = blk(x, pos, batch) - x
        for b, sl in ((0, slice(0, 12)), (1, slice(12, 30))):
            if bool((delta[sl] == 0).all()):
                seen.add((b, "drop"))
            else:  # kept: scaled by 1 / (1 - p)
                assert torch.allclose(delta[sl], 2 * branch[sl], atol=1e-5)
                seen.add((b, "keep"))
    assert len(seen) == 4
    blk.eval()
    assert torch.allclose(blk(x, pos, batch) - x, branch, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_finite(cloud, dtype):
    x, pos, batch = cloud
    blk = make("cbam").to(dtype)
    out = blk(x.to(dtype), pos.to(dtype), batch)
    assert out.dtype == dtype and bool(torch.isfinite(out).all())


def test_bad_inputs(cloud):
    x, pos, batch = cloud
    with pytest.raises(ValueError, match="32 -> 32 channels, got in_channels=16"):
        AttentionBlock(CBAM(16), channels=32)
    with pytest.raises(ValueError, match="pass channels="):
        AttentionBlock(nn.Identity())
    with pytest.raises(TypeError, match="nn.Module"):
        AttentionBlock(lambda x: x)
    with pytest.raises(ValueError, match="drop_path"):
        AttentionBlock(CBAM(16), drop_path=1.0)
    blk = make("cbam")
    with pytest.raises(ValueError, match="x has 8 channels"):
        blk(torch.randn(30, 8), pos, batch)
    with pytest.raises(ValueError, match="batch"):
        blk(x, pos, batch[:4])


def test_device_matches_cpu(cloud, device):
    x, pos, batch = cloud
    blk = make("cbam", layer_scale=0.5)
    ref = blk(x, pos, batch)
    out = blk.to(device)(x.to(device), pos.to(device), batch.to(device))
    assert torch.allclose(out.cpu(), ref, atol=1e-4)
