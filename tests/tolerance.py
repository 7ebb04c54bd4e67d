"""Float tolerances that hold on any x86-64 CPU (Intel or AMD, AVX2 or AVX-512).

A float32 reduction's rounding depends on the order of its terms, and MKL and
oneDNN choose that order by CPU (``MKL_CBWR=AVX2`` on an AVX-512 Intel machine
moves it the way an AMD EPYC does). So a reduction is compared with a tolerance
that scales with the magnitude of its terms and with their number, never with
``rtol=0`` and a fixed ``atol``:

.. math::
    |\\text{got} - \\text{ref}| \\le u \\, \\epsilon \\, \\sqrt{n} \\, \\sum_j |t_j|

(``u`` ulps, ``epsilon`` the dtype's machine epsilon, ``n`` terms ``t_j``): the
probabilistic bound of a sum of ``n`` rounded terms (Higham, "Accuracy and
Stability of Numerical Algorithms", section 4.2).
"""

from __future__ import annotations

import math

import torch


def reduction_atol(scale: torch.Tensor | float, terms: int, *,
                   dtype: torch.dtype = torch.float32, ulps: float = 4.0
                   ) -> torch.Tensor | float:
    """Absolute tolerance of a sum of ``terms`` values whose absolute values sum
    to ``scale`` (a tensor gives one tolerance per element).

    Example:
        >>> f"{reduction_atol(60.0, 16) / 60.0:.3g}"  # 4 ulps x sqrt(16) = 16 eps
        '1.91e-06'
    """
    eps = torch.finfo(dtype).eps
    return ulps * eps * math.sqrt(max(int(terms), 1)) * scale


def assert_reduction_close(got: torch.Tensor, ref: torch.Tensor,
                           scale: torch.Tensor | float, terms: int, *,
                           ulps: float = 4.0, what: str = "") -> None:
    """``got`` equals ``ref`` within :func:`reduction_atol` per element."""
    tol = reduction_atol(scale, terms, dtype=ref.dtype, ulps=ulps)
    err = (got.double() - ref.double()).abs()
    ok = err <= torch.as_tensor(tol, dtype=torch.float64) + 1e-30
    if not bool(ok.all()):
        i = int((err - torch.as_tensor(tol, dtype=torch.float64)).flatten().argmax())
        t = torch.as_tensor(tol).flatten()
        raise AssertionError(
            f"{what}: {int((~ok).sum())} of {ok.numel()} elements differ by more "
            f"than {ulps} ulps x sqrt({terms}) of their terms' magnitude; worst "
            f"{float(err.flatten()[i]):.3g} against a tolerance of "
            f"{float(t[i if t.numel() > 1 else 0]):.3g}")
