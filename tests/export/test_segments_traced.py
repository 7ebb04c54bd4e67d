"""The segment reductions of :mod:`pointsam.nn.network` as they are traced
(torch.export and ONNX Runtime) equal their eager forms, empty segments
included (0 for an empty segment, as eager)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pointsam.ops import segment_max as seg_max
from pointsam.ops import segment_sum as seg_sum
from tests.tolerance import assert_reduction_close


class _Seg(nn.Module):
    def __init__(self, fn, num: int) -> None:
        super().__init__()
        self.fn, self.num = fn, num

    def forward(self, src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return self.fn(src, index, self.num)


def _check(got: torch.Tensor, fn, src, index, what: str) -> None:
    """seg_max picks one of the values (exact); seg_sum is a float32 reduction
    whose order the tracer may change (a matmul, MKL's order by CPU): compared
    within a few ulps of the segment's magnitude times sqrt(its length)."""
    ref = fn(src, index, 4)
    if fn is seg_max:
        torch.testing.assert_close(got, ref, rtol=0, atol=0)  # a max picks an input: exact
        return
    scale = seg_sum(src.abs(), index, 4)  # [4, 6] sum of |terms| per element
    terms = int(torch.bincount(index).max())
    assert_reduction_close(got, ref, scale, terms, what=what)


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
    _check(ep.module()(src, index), fn, src, index, "torch.export")


@pytest.mark.parametrize("fn", [seg_max, seg_sum])
def test_onnx_segment_reduction_equals_eager(fn, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    src, index = _case()
    path = tmp_path / "seg.onnx"
    torch.onnx.export(_Seg(fn, 4), (src, index), str(path), dynamo=True,
                      input_names=["src", "index"], report=False, verbose=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"src": src.numpy(), "index": index.numpy()})
    assert torch.all(torch.from_numpy(got)[1] == 0)
    _check(torch.from_numpy(got), fn, src, index, "ONNX Runtime")
