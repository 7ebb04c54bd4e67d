r"""Whitespace- or comma-separated text tables (``.xyz .txt .pts .csv``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .._common import CloudFormatError
from ._util import PathLike, read_bytes

__all__ = ["read_xyz"]


def read_xyz(path: PathLike, *, delimiter: str | None = None) -> np.ndarray:
    """Read a text table (whitespace or comma separated) as float64 :math:`(N, C)`.

    Raises :class:`CloudFormatError` naming the file when rows differ in length or
    hold non-numbers.
    """
    path = Path(path)
    text = read_bytes(path).decode("ascii", errors="replace")
    rows = [
        ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    if not rows:
        raise CloudFormatError(f"{path}: empty file")
    sep = delimiter if delimiter is not None else ("," if "," in rows[0] else None)
    split = (lambda r: re.split(r"[,\s]+", r.strip())) if sep == "," else str.split
    widths = np.fromiter((len(split(r)) for r in rows), dtype=np.int64,
                         count=len(rows))  # [N]
    width = int(widths[0])
    if bool((widths != width).any()):
        bad = int(np.nonzero(widths != width)[0][0])
        raise CloudFormatError(
            f"{path}: rows have different numbers of columns (first row has {width}, "
            f"data row {bad + 1} has {int(widths[bad])})"
        )
    try:
        flat = np.array(
            re.split(r"[,\s]+", " ".join(rows).strip())
            if sep == ","
            else " ".join(rows).split(),
            dtype=np.float64,
        )
    except ValueError:
        raise CloudFormatError(f"{path}: non-numeric values in the table") from None
    if flat.size != width * len(rows):
        raise CloudFormatError(
            f"{path}: rows have different numbers of columns (first row has {width})"
        )
    return flat.reshape(len(rows), width)
