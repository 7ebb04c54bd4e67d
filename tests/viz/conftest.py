"""Fixtures of the visualisation tests: the Open3D renderer probe."""

import pytest

from pointsam.viz import renderer_available


@pytest.fixture(scope="session")
def open3d_renderer() -> str:
    """``"open3d"`` when the offscreen renderer starts here; otherwise a skip
    that says why (never a silent pass)."""
    ok, why = renderer_available()
    if not ok:
        pytest.skip(f"Open3D OffscreenRenderer cannot start here: {why}")
    return "open3d"
