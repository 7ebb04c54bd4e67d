"""Validation at the boundary: ops.trusted / ops.validate_always."""

from __future__ import annotations

import threading

import pytest
import torch

from pointsam import ops
from pointsam.nn import PointGate


def test_public_ops_validate_outside_trusted():
    pos = torch.randn(10, 3)
    pos[2, 0] = float("nan")
    for call in (lambda: ops.knn(pos, 3), lambda: ops.fps(pos, num=3),
                 lambda: ops.grid_subsample(pos, 0.5)):
        with pytest.raises(ValueError, match="NaN or Inf"):
            call()


def test_trusted_skips_value_checks_only():
    pos = torch.randn(10, 3)
    unsorted = torch.tensor([1] * 5 + [0] * 5)
    with pytest.raises(ValueError, match="sorted"):
        ops.knn(pos, 3, unsorted)
    with ops.trusted():
        ops.knn(pos, 3, unsorted)  # no value check (the caller vouches for it)
        with pytest.raises(ValueError, match="k must be"):
            ops.knn(pos, 0)  # argument checks stay
        assert ops.batch_size_of(torch.tensor([0, 3]), 2) == 2  # no cover check
        with ops.validate_always(), pytest.raises(ValueError, match="sorted"):
            ops.knn(pos, 3, unsorted)
    with pytest.raises(ValueError, match="batch_size=2 but batch holds cloud id 3"):
        ops.batch_size_of(torch.tensor([0, 3]), 2)


def test_module_checks_unless_trusted():
    gate = PointGate(4, k=3)
    x, pos = torch.randn(6, 4), torch.randn(6, 3)
    bad = torch.full((6, 3), 9, dtype=torch.long)
    with pytest.raises(ValueError, match="outside"):
        gate(x, pos, None, bad)
    with ops.trusted(), pytest.raises(ValueError, match="needs point features x"):
        gate(None, pos)  # the protocol check (no host sync) stays


def test_trust_is_per_thread():
    seen = []
    with ops.trusted():
        t = threading.Thread(target=lambda: seen.append(ops.is_trusted()))
        t.start()
        t.join()
        seen.append(ops.is_trusted())
    assert seen == [False, True] and not ops.is_trusted()
