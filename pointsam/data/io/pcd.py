r"""PCD v0.7 point clouds (ASCII, binary; binary_compressed decoded by Open3D).

The header and the byte counts are checked here, not by a library: Open3D's
readers return an empty cloud with a warning for a truncated binary file and
accept a ``binary_compressed`` or ASCII body whose size disagrees with
``POINTS``, where this reader names the file and the sizes. A binary body
longer than ``POINTS`` says is refused as well as a short one: reading the
first ``POINTS`` would silently drop the rest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch_geometric.data import Data

from .._common import CloudFormatError, make_data
from ._util import PathLike, read_bytes, read_open3d

__all__ = ["read_pcd"]

_PCD_TYPES = {
    ("F", 4): "f4",
    ("F", 8): "f8",
    ("U", 1): "u1",
    ("U", 2): "u2",
    ("U", 4): "u4",
    ("U", 8): "u8",
    ("I", 1): "i1",
    ("I", 2): "i2",
    ("I", 4): "i4",
    ("I", 8): "i8",
}


def _pcd_dtype(path: Path, h: dict[str, list[str]]) -> np.dtype:
    fields = h.get("FIELDS")
    if not fields:
        raise CloudFormatError(f"{path}: PCD header has no FIELDS line")
    sizes = [int(s) for s in h.get("SIZE", ["4"] * len(fields))]
    types = h.get("TYPE", ["F"] * len(fields))
    counts = [int(c) for c in h.get("COUNT", ["1"] * len(fields))]
    if not len(sizes) == len(types) == len(counts) == len(fields):
        raise CloudFormatError(f"{path}: PCD FIELDS/SIZE/TYPE/COUNT lengths differ")
    desc = []
    for i, (name, s, t, c) in enumerate(zip(fields, sizes, types, counts)):
        if (t, s) not in _PCD_TYPES:
            raise CloudFormatError(f"{path}: unsupported PCD type {t}{s} for {name}")
        nm = name if name != "_" else f"_pad{i}"
        desc.append(
            (nm, "<" + _PCD_TYPES[(t, s)], (c,))
            if c > 1
            else (nm, "<" + _PCD_TYPES[(t, s)])
        )
    return np.dtype(desc)


def read_pcd(path: PathLike) -> Data:
    """Read a PCD v0.7 file (ASCII or binary; binary_compressed via Open3D).

    Fields ``x y z`` give ``pos``; ``normal_x/y/z``, ``rgb``/``rgba`` (packed),
    ``intensity`` give ``x``; ``label`` gives ``y``.
    """
    path = Path(path)
    raw = read_bytes(path)
    h: dict[str, list[str]] = {}
    off = 0
    while True:
        end = raw.find(b"\n", off)
        if end < 0:
            raise CloudFormatError(f"{path}: PCD header has no DATA line")
        line = raw[off:end].decode("ascii", errors="replace").strip()
        off = end + 1
        if not line or line.startswith("#"):
            continue
        key, *vals = line.split()
        h[key.upper()] = vals
        if key.upper() == "DATA":
            break
    mode = h["DATA"][0].lower() if h["DATA"] else ""
    try:
        n = int(h.get("POINTS", [h.get("WIDTH", ["0"])[0]])[0])
    except ValueError:
        raise CloudFormatError(f"{path}: bad PCD POINTS line") from None
    dt = _pcd_dtype(path, h)
    if mode == "binary":
        need = n * dt.itemsize
        if len(raw) - off < need:
            raise CloudFormatError(
                f"{path}: truncated PCD, {n} points need {need} bytes after the "
                f"header, found {len(raw) - off}"
            )
        if len(raw) - off > need:
            extra = len(raw) - off - need
            raise CloudFormatError(
                f"{path}: PCD header says {n} points ({need} bytes after the "
                f"header), but the data holds {len(raw) - off} bytes "
                f"({(len(raw) - off) / dt.itemsize:g} points); fix POINTS/WIDTH "
                f"({extra} bytes left over)"
            )
        rec = np.frombuffer(raw, dtype=dt, count=n, offset=off)
    elif mode == "ascii":
        try:
            vals = np.array(raw[off:].split(), dtype=np.float64)
        except ValueError:
            raise CloudFormatError(f"{path}: non-numeric PCD ascii data") from None
        width = sum(int(np.prod(dt[k].shape)) if dt[k].shape else 1 for k in dt.names)
        if vals.size != n * width:
            raise CloudFormatError(
                f"{path}: PCD header says {n} points x {width} "
                f"values, data has {vals.size} values"
            )
        flat = vals.reshape(n, width)
        rec = np.zeros(n, dtype=dt)
        col = 0
        for k in dt.names:
            w = int(np.prod(dt[k].shape)) if dt[k].shape else 1
            rec[k] = flat[:, col : col + w].reshape(rec[k].shape)
            col += w
    elif mode == "binary_compressed":
        # layout: uint32 compressed size, uint32 raw size, then LZF bytes
        if len(raw) - off < 8:
            raise CloudFormatError(f"{path}: truncated binary_compressed PCD "
                                   "(no size words after the header)")
        packed, unpacked = np.frombuffer(raw, dtype="<u4", count=2, offset=off)
        if int(unpacked) != n * dt.itemsize:
            raise CloudFormatError(
                f"{path}: binary_compressed PCD says {int(unpacked)} raw bytes, but "
                f"{n} points x {dt.itemsize} bytes need {n * dt.itemsize}")
        if int(packed) == 0 or len(raw) - off - 8 < int(packed):
            raise CloudFormatError(
                f"{path}: truncated binary_compressed PCD ({int(packed)} compressed "
                f"bytes announced, {len(raw) - off - 8} present)")
        d = read_open3d(path)
        if d.num_nodes != n:
            raise CloudFormatError(
                f"{path}: PCD header says {n} points, Open3D decoded {d.num_nodes}")
        return d
    else:
        raise CloudFormatError(f"{path}: unknown PCD DATA mode {mode!r}")
    names = set(dt.names)
    if not {"x", "y", "z"} <= names:
        raise CloudFormatError(f"{path}: PCD has no x y z fields ({dt.names})")
    pos = np.stack([rec["x"], rec["y"], rec["z"]], 1).astype(np.float64)  # [N, 3]
    feats, fields = [], []
    if {"normal_x", "normal_y", "normal_z"} <= names:
        feats.append(np.stack([rec[f"normal_{a}"] for a in "xyz"], 1))
        fields += ["nx", "ny", "nz"]
    for key in ("rgb", "rgba"):
        if key in names:
            packed = np.ascontiguousarray(rec[key]).view(np.uint32)
            rgb = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], 1)
            feats.append(rgb / 255.0)
            fields += ["r", "g", "b"]
            break
    if "intensity" in names:
        feats.append(rec["intensity"].reshape(-1, 1))
        fields.append("intensity")
    y = rec["label"].astype(np.int64) if "label" in names else None
    x = np.concatenate(feats, 1) if feats else None
    return make_data(pos, source=path, x=x, y=y, fields=fields)
