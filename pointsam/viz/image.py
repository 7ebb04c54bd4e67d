"""PNG files: ``[H, W, 3]`` uint8 images in and out (through Pillow, which
matplotlib depends on). Figures themselves are composed in
:mod:`pointsam.viz.figure` with matplotlib.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointsam._atomic import atomic_write

__all__ = ["write_png", "read_png"]


def write_png(path: str | Path, img: np.ndarray) -> Path:
    """Write a ``[H, W, 3]`` uint8 image as PNG, exactly these pixels.

    Example:
        >>> import tempfile, os
        >>> img = np.zeros((4, 6, 3), dtype=np.uint8); img[1, 2] = (255, 0, 7)
        >>> p = write_png(os.path.join(tempfile.mkdtemp(), "a.png"), img)
        >>> bool((read_png(p) == img).all())
        True
    """
    from PIL import Image

    path = Path(path)
    img = np.ascontiguousarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"write_png needs [H, W, 3] uint8, got {img.dtype} "
                         f"{img.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:  # a full disk keeps the previous file
        Image.fromarray(img, mode="RGB").save(f, format="PNG", optimize=True)
    return path


def read_png(path: str | Path) -> np.ndarray:
    """Read a PNG (or any image Pillow reads) as ``[H, W, 3]`` uint8."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image at {path}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB")).copy()
    except OSError as e:
        raise OSError(f"could not read image {path}: {e}") from None
