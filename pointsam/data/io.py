r"""Readers for single point-cloud, mesh and label files.

:func:`read_cloud` dispatches on the suffix and returns a PyG ``Data`` with
``pos`` float32 :math:`(N, 3)`, ``x`` float32 :math:`(N, C)` when the file holds
per-point features (normals, then colours in [0, 1], then intensity), and ``y``
int64 :math:`(N)` when it holds per-point labels. ``data.fields`` names the
columns of ``x``.

==========================  =====================================================
``.ply``                    ASCII / binary vertex element (plyfile); other
                            layouts through Open3D
``.pcd``                    ASCII and binary read directly; ``binary_compressed``
                            through Open3D
``.xyz`` ``.txt`` ``.pts``  whitespace or comma separated, 3 + C columns
``.npy``                    :math:`(N, 3 + C)` array
``.bin``                    KITTI Velodyne float32 :math:`(N, 4)` x, y, z, remission;
                            nuScenes ``*.pcd.bin`` :math:`(N, 5)`; ``bin_columns``
                            for other widths (6 for xyzrgb)
``.las`` ``.laz``           laspy; ``pos`` is relative to ``data.origin``
                            (float64 :math:`(1, 3)`, the floor of the minimum
                            corner) so float32 keeps centimetres; ``y`` is the
                            ASPRS classification, ``x`` the intensity
``.off``                    a mesh: use :func:`read_off`
==========================  =====================================================

Every reader raises :class:`CloudFormatError` naming the file for an empty or
truncated file, a bad header, or NaN/Inf coordinates.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from torch_geometric.data import Data

from ._common import CloudFormatError, make_data
from .ply import PlyLayoutError, read_ply_vertices

__all__ = [
    "read_cloud",
    "read_off",
    "read_pcd",
    "read_ply",
    "read_kitti_bin",
    "read_kitti_label",
    "read_las",
    "read_xyz",
    "sample_surface",
]

PathLike = str | os.PathLike[str]


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    if not raw.strip():
        raise CloudFormatError(f"{path}: empty file")
    return raw


# --------------------------------------------------------------------------- OFF
def read_off(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    r"""Read an OFF mesh: vertices float64 :math:`(V, 3)`, triangles int64 (F, 3).

    Accepts the malformed merged header of real ModelNet files (``OFF3514 3546 0``
    on one line), counts on the ``OFF`` line, ``#`` comments, and polygons of any
    size (fan-triangulated; trailing face colours are ignored).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "quad.off"
        >>> _ = p.write_text("OFF4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n")
        >>> v, f = read_off(p)
        >>> v.shape, f.tolist()
        ((4, 3), [[0, 1, 2], [0, 2, 3]])
    """
    path = Path(path)
    text = _read_bytes(path).decode("ascii", errors="replace")
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or not lines[0].startswith("OFF"):
        head = lines[0][:40] if lines else ""
        raise CloudFormatError(f"{path}: bad OFF header {head!r} (must start with OFF)")
    rest = lines[0][3:].split()
    body = 1
    if not rest:
        if len(lines) < 2:
            raise CloudFormatError(f"{path}: OFF header has no vertex/face counts")
        rest = lines[1].split()
        body = 2
    try:
        nv, nf = int(rest[0]), int(rest[1])
    except (IndexError, ValueError):
        raise CloudFormatError(
            f"{path}: bad OFF counts line {' '.join(rest)!r}"
        ) from None
    if nv <= 0 or nf < 0:
        raise CloudFormatError(f"{path}: bad OFF counts V={nv} F={nf}")
    if len(lines) < body + nv + nf:
        raise CloudFormatError(
            f"{path}: truncated OFF, header promises {nv} vertices and {nf} faces "
            f"but the file has {len(lines) - body} data lines"
        )
    vlines = lines[body : body + nv]
    try:
        tok = " ".join(vlines).split()
        if len(tok) == 3 * nv:
            verts = np.array(tok, dtype=np.float64).reshape(nv, 3)  # [V, 3]
        else:
            verts = np.array([ln.split()[:3] for ln in vlines], dtype=np.float64)
    except ValueError:
        raise CloudFormatError(f"{path}: non-numeric vertex coordinates") from None
    if not np.isfinite(verts).all():
        raise CloudFormatError(f"{path}: NaN or Inf vertex coordinates")
    flines = lines[body + nv : body + nv + nf]
    try:
        tok = " ".join(flines).split()
        arr = np.array(tok, dtype=np.int64) if len(tok) == 4 * nf else None
        if arr is not None and (arr.reshape(nf, 4)[:, 0] == 3).all():
            faces = arr.reshape(nf, 4)[:, 1:]  # [F, 3]
        else:
            tris: list[list[int]] = []
            for ln in flines:
                t = [int(v) for v in ln.split()]
                n = t[0]
                if n < 3 or len(t) < n + 1:
                    raise CloudFormatError(f"{path}: bad face line {ln!r}")
                idx = t[1 : n + 1]
                tris += [[idx[0], idx[i], idx[i + 1]] for i in range(1, n - 1)]
            faces = np.array(tris, dtype=np.int64).reshape(-1, 3)
    except ValueError:
        raise CloudFormatError(f"{path}: non-integer face indices") from None
    if faces.size and (faces.min() < 0 or faces.max() >= nv):
        raise CloudFormatError(f"{path}: face index out of range 0..{nv - 1}")
    return verts, faces


def sample_surface(
    verts: np.ndarray,
    faces: np.ndarray,
    num: int,
    rng: np.random.Generator,
    face_labels: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    r"""Area-weighted uniform sampling of a triangle mesh, with face normals.

    Face :math:`f` is drawn with probability :math:`A_f / \sum A`; a point in it is
    :math:`(1 - \sqrt{r_1}) a + \sqrt{r_1}(1 - r_2) b + \sqrt{r_1} r_2 c` with
    :math:`r_1, r_2 \sim U(0, 1)`; its normal is the unit face normal
    :math:`(b - a) \times (c - a) / \|\cdot\|`.

    Returns:
        points float64 :math:`(num, 3)`, normals float64 :math:`(num, 3)`, and the
        sampled faces' labels :math:`(num)` when ``face_labels`` is given.
    """
    a, b, c = (verts[faces[:, i]] for i in range(3))  # 3 x [F, 3]
    cross = np.cross(b - a, c - a)  # [F, 3]
    area2 = np.linalg.norm(cross, axis=1)  # [F]
    total = area2.sum()
    if not total > 0:
        raise CloudFormatError("mesh has zero surface area")
    f = rng.choice(len(faces), size=num, p=area2 / total)  # [num]
    r1 = np.sqrt(rng.random((num, 1)))
    r2 = rng.random((num, 1))
    pts = (1 - r1) * a[f] + r1 * (1 - r2) * b[f] + r1 * r2 * c[f]  # [num, 3]
    nrm = cross[f] / area2[f, None]  # [num, 3]
    if face_labels is None:
        return pts, nrm
    return pts, nrm, face_labels[f]


# --------------------------------------------------------------------------- PCD
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
    raw = _read_bytes(path)
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
        d = _read_open3d(path)
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


def _read_open3d(path: Path) -> Data:
    import open3d as o3d

    pcd = o3d.io.read_point_cloud(str(path))
    pos = np.asarray(pcd.points)
    if pos.shape[0] == 0:
        raise CloudFormatError(f"{path}: Open3D read no points (empty or malformed)")
    feats, fields = [], []
    if pcd.has_normals():
        feats.append(np.asarray(pcd.normals))
        fields += ["nx", "ny", "nz"]
    if pcd.has_colors():
        feats.append(np.asarray(pcd.colors))
        fields += ["r", "g", "b"]
    x = np.concatenate(feats, 1) if feats else None
    return make_data(pos, source=path, x=x, fields=fields)


# --------------------------------------------------------------------------- PLY
def read_ply(path: PathLike) -> Data:
    """Read the vertex element of a PLY file (ASCII or binary, little or big endian).

    Properties ``x y z`` give ``pos``; ``nx ny nz``, ``red green blue`` (uchar,
    scaled to [0, 1]), ``intensity``/``scalar_intensity`` give ``x``; ``label``,
    ``class`` or ``scalar_label`` gives ``y``. The file is parsed by
    :func:`pointsam.data.ply.read_ply_vertices` (plyfile); files whose first
    element is not a list-free ``vertex`` element are read through Open3D.
    """
    path = Path(path)
    try:
        rec, _ = read_ply_vertices(path)
    except PlyLayoutError:
        return _read_open3d(path)
    if not {"x", "y", "z"} <= rec.keys():
        raise CloudFormatError(f"{path}: PLY vertex has no x y z properties")
    pos = np.stack([rec["x"], rec["y"], rec["z"]], 1).astype(np.float64)  # [N, 3]
    feats, fields = [], []
    if {"nx", "ny", "nz"} <= rec.keys():
        feats.append(np.stack([rec["nx"], rec["ny"], rec["nz"]], 1))
        fields += ["nx", "ny", "nz"]
    if {"red", "green", "blue"} <= rec.keys():
        feats.append(np.stack([rec["red"], rec["green"], rec["blue"]], 1) / 255.0)
        fields += ["r", "g", "b"]
    for k in ("intensity", "scalar_intensity", "remission", "reflectance"):
        if k in rec:
            feats.append(np.asarray(rec[k]).reshape(-1, 1))
            fields.append("intensity")
            break
    y = None
    for k in ("label", "class", "scalar_label", "semantic"):
        if k in rec:
            y = np.asarray(rec[k]).astype(np.int64)
            break
    x = np.concatenate(feats, 1) if feats else None
    return make_data(pos, source=path, x=x, y=y, fields=fields)


# --------------------------------------------------------------------------- text
def read_xyz(path: PathLike, *, delimiter: str | None = None) -> np.ndarray:
    """Read a text table (whitespace or comma separated) as float64 :math:`(N, C)`.

    Raises :class:`CloudFormatError` naming the file when rows differ in length or
    hold non-numbers.
    """
    path = Path(path)
    text = _read_bytes(path).decode("ascii", errors="replace")
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


# --------------------------------------------------------------------------- KITTI
def read_kitti_bin(path: PathLike, columns: int = 4) -> np.ndarray:
    """Read a Velodyne ``.bin`` scan: float32 :math:`(N, columns)` (x, y, z, remission).

    Raises :class:`CloudFormatError` naming the file when its size is not a
    multiple of ``4 * columns`` bytes (a truncated scan).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise CloudFormatError(f"{path}: empty file")
    if size % (4 * columns):
        raise CloudFormatError(
            f"{path}: truncated or malformed scan, {size} bytes is not a multiple of "
            f"{4 * columns} (float32 x {columns} columns)"
        )
    return np.fromfile(path, dtype="<f4").reshape(-1, columns)


def read_kitti_label(
    path: PathLike, num_points: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a SemanticKITTI ``.label``: (semantic = low 16 bits, instance = high 16).

    Raises :class:`CloudFormatError` naming the file when its length is not a
    multiple of 4 bytes or differs from ``num_points``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    size = path.stat().st_size
    if size % 4:
        raise CloudFormatError(f"{path}: {size} bytes is not a multiple of 4 (uint32)")
    lab = np.fromfile(path, dtype="<u4")
    if num_points is not None and lab.size != num_points:
        raise CloudFormatError(
            f"{path}: label length mismatch, {lab.size} labels for a scan of "
            f"{num_points} points"
        )
    return (lab & 0xFFFF).astype(np.int64), (lab >> 16).astype(np.int64)


# --------------------------------------------------------------------------- LAS
def read_las(path: PathLike) -> Data:
    """Read a LAS/LAZ file with laspy (``pip install laspy``).

    ``pos`` = coordinates minus ``data.origin`` (float64 :math:`(1, 3)`, the floor of
    the minimum corner), ``x`` = intensity, ``y`` = ASPRS classification.
    """
    path = Path(path)
    try:
        import laspy
    except ImportError:  # pragma: no cover - laspy is in the dev extras
        raise ImportError(f"reading {path} needs laspy: pip install laspy") from None
    _read_bytes(path)
    try:
        las = laspy.read(str(path))
    except Exception as err:  # laspy raises its own error types
        raise CloudFormatError(f"{path}: malformed LAS file ({err})") from err
    xyz = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], 1)
    if xyz.shape[0] == 0:
        raise CloudFormatError(f"{path}: empty cloud (0 points)")
    origin = np.floor(xyz.min(0, keepdims=True))  # [1, 3]
    import torch

    return make_data(
        xyz - origin,
        source=path,
        x=np.asarray(las.intensity, dtype=np.float32).reshape(-1, 1),
        y=np.asarray(las.classification, dtype=np.int64),
        fields=["intensity"],
        origin=torch.from_numpy(origin),
    )


# --------------------------------------------------------------------------- any
_BIN_FIELDS = {4: ["remission"], 5: ["intensity", "ring"]}
_BIN_MAX_COORD = 1e5  # metres: larger coordinates mean a wrong column count


def _bin_columns(path: Path) -> int:
    """Default float32 columns of a ``.bin`` scan: 5 for nuScenes ``*.pcd.bin``."""
    return 5 if path.name.lower().endswith(".pcd.bin") else 4


def read_cloud(path: PathLike, *, bin_columns: int | None = None) -> Data:
    """Read one point cloud of any supported format into a ``Data`` (see module doc).

    A ``.bin`` scan is float32 with ``bin_columns`` values per point: by default
    4 (KITTI / SemanticKITTI x, y, z, remission), or 5 for nuScenes ``*.pcd.bin``
    (x, y, z, intensity, ring); other layouts (6 for the xyzrgb ``.bin`` of S3DIS,
    ScanNet, SUN RGB-D, or Waymo in KITTI format) need ``bin_columns``. With the
    default, a file whose size does not fit, or whose coordinates come out
    non-finite or beyond 100 km, is a :class:`CloudFormatError` that says so.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "c.xyz"
        >>> _ = p.write_text("0 0 0 1\\n1 0 0 2\\n")
        >>> d = read_cloud(p)
        >>> d.pos.shape, d.x.tolist()
        (torch.Size([2, 3]), [[1.0], [2.0]])
    """
    path = Path(path)
    suf = path.suffix.lower()
    if suf == ".ply":
        return read_ply(path)
    if suf == ".pcd":
        return read_pcd(path)
    if suf in (".xyz", ".txt", ".pts", ".csv"):
        arr = read_xyz(path)
        if arr.shape[1] < 3:
            raise CloudFormatError(
                f"{path}: needs at least 3 columns, has {arr.shape[1]}"
            )
        return make_data(
            arr[:, :3],
            source=path,
            x=arr[:, 3:] if arr.shape[1] > 3 else None,
            fields=[],
        )
    if suf == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise CloudFormatError(
                f"{path}: not a readable .npy array ({err})"
            ) from err
        if arr.ndim != 2 or arr.shape[1] < 3:
            raise CloudFormatError(f"{path}: .npy must be [N, 3 + C], got {arr.shape}")
        return make_data(
            arr[:, :3],
            source=path,
            x=arr[:, 3:] if arr.shape[1] > 3 else None,
            fields=[],
        )
    if suf == ".bin":
        cols = _bin_columns(path) if bin_columns is None else bin_columns
        if isinstance(cols, bool) or not isinstance(cols, int) or cols < 3:
            raise ValueError(f"bin_columns must be an integer >= 3, got {cols!r}")
        hint = ("" if bin_columns is not None else
                f" (read with the default {cols} float32 columns; pass bin_columns "
                "for another layout, e.g. 6 for xyzrgb)")
        try:
            arr = read_kitti_bin(path, cols)
        except CloudFormatError as err:
            raise CloudFormatError(f"{err}{hint}") from None
        if bin_columns is None:
            xyz = arr[:, :3]
            if not bool(np.isfinite(xyz).all()) or \
                    float(np.abs(xyz).max(initial=0.0)) > _BIN_MAX_COORD:
                raise CloudFormatError(
                    f"{path}: coordinates are non-finite or beyond "
                    f"{_BIN_MAX_COORD:.0e} m{hint}")
        return make_data(
            arr[:, :3],
            source=path,
            x=arr[:, 3:] if cols > 3 else None,
            fields=_BIN_FIELDS.get(cols, []),
        )
    if suf in (".las", ".laz"):
        return read_las(path)
    if suf == ".off":
        raise ValueError(
            f"{path}: an OFF file is a mesh; use read_off and "
            "sample_surface (or the ModelNet dataset)"
        )
    raise ValueError(
        f"{path}: unknown point-cloud suffix {suf!r}; supported: .ply "
        ".pcd .xyz .txt .pts .csv .npy .bin .las .laz"
    )
