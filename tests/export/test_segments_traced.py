"""The segment reductions of :mod:`pointsam.nn.network` as they are traced
(torch.export and ONNX Runtime) equal their eager forms, empty segments
included (0 for an empty segment, as eager)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pointsam.nn.network import seg_max, seg_sum


class _Seg(nn.Module):
    def __init__(self, fn, num: int) -> None:
        super().__init__()
        self.fn, self.num = fn, num

    def forward(self, src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.fn(src, index, self.num)


def _case():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(40, 6, generator=g) - 3.0  # mostly negative: 0 is not a max
    index = torch.tensor([0] * 10 + [2] * 18 + [3] * 12)  # segment 1 is empty
    return src, index


@pytest.mark.parametrize("fn", [seg_max, seg_sum])
def test_traced_segment_reduction_equals_eager(fn):
    src, index = _case()
    ref = fn(src, index, 4)  # [4, 6]
    assert torch.all(ref[1] == 0)
    ep = torch.export.export(_Seg(fn, 4), (src, index))
    torch.testing.assert_close(ep.module()(src, index), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("fn", [seg_max, seg_sum])
def test_onnx_segment_reduction_equals_eager(fn, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    src, index = _case()
    ref = fn(src, index, 4)
    path = tmp_path / "seg.onnx"
    torch.onnx.export(_Seg(fn, 4), (src, index), str(path), dynamo=True,
                      input_names=["src", "index"], report=False, verbose=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"src": src.numpy(), "index": index.numpy()})
    np.testing.assert_allclose(got, ref.numpy(), rtol=0, atol=1e-5)
