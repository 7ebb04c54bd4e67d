r"""OFF meshes and area-weighted surface sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._common import CloudFormatError
from ._util import PathLike, read_bytes

__all__ = ["read_off", "sample_surface"]


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
    text = read_bytes(path).decode("ascii", errors="replace")
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
