import numpy as np
import pytest
import torch

from pointsam.viz import VIRIDIS, axis_colors, colormap, label_colors, value_range
from pointsam.viz.colors import GREY, PALETTE


def _lightness(rgb: np.ndarray) -> np.ndarray:
    """CIE L* of sRGB colours (perceived lightness)."""
    c = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    y = c @ np.array([0.2126, 0.7152, 0.0722])
    return np.where(y > 216 / 24389, 116 * np.cbrt(y) - 16, y * 24389 / 27)


def test_viridis_table_is_the_published_one():
    assert VIRIDIS.shape == (256, 3)
    np.testing.assert_allclose(VIRIDIS[0], [0.267004, 0.004874, 0.329415])
    np.testing.assert_allclose(VIRIDIS[128], [0.127568, 0.566949, 0.550556])
    np.testing.assert_allclose(VIRIDIS[-1], [0.993248, 0.906157, 0.143936])


def test_every_matplotlib_cmap_is_accepted():
    np.testing.assert_allclose(colormap(np.array([0.0, 1.0]), cmap="gray"),
                               [[0, 0, 0], [1, 1, 1]])
    assert not np.allclose(colormap(np.array([0.5]), cmap="plasma"),
                           colormap(np.array([0.5])))


def test_colour_is_monotone_in_weight():
    w = np.linspace(-2.0, 3.0, 1001)
    lum = _lightness(colormap(w))
    assert np.all(np.diff(lum) > 0), "lightness must rise strictly with the weight"
    # perceptually uniform: equal weight steps give nearly equal lightness steps
    steps = np.diff(_lightness(colormap(np.linspace(0, 1, 11))))
    assert steps.max() / steps.min() < 1.6


def test_colormap_scale_clips_and_shares():
    a, b = np.array([0.0, 0.5]), np.array([0.25, 1.0])
    lo, hi = value_range(a, b)
    assert (lo, hi) == (0.0, 1.0)
    # the same weight gets the same colour in both panels under the shared scale
    ca, cb = colormap(a, lo, hi), colormap(b, lo, hi)
    assert not np.allclose(ca[0], cb[0])
    np.testing.assert_allclose(colormap(np.array([0.5]), lo, hi)[0], ca[1])
    # out-of-range values clip to the ends; NaN is grey
    c = colormap(np.array([-5.0, 9.0, np.nan]), 0.0, 1.0)
    np.testing.assert_allclose(c[0], VIRIDIS[0])
    np.testing.assert_allclose(c[1], VIRIDIS[-1])
    np.testing.assert_allclose(c[2], GREY)


def test_colormap_accepts_tensors_of_any_float_dtype():
    for dt in (torch.float32, torch.float16, torch.bfloat16):
        out = colormap(torch.tensor([[0.0], [1.0]], dtype=dt))
        np.testing.assert_allclose(out[1], VIRIDIS[-1], atol=1e-6)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="values must be"):
        colormap(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="unknown cmap"):
        colormap(np.zeros(3), cmap="no_such_map")
    with pytest.raises(ValueError, match="below vmin"):
        value_range(np.zeros(2), vmin=1.0, vmax=0.0)
    with pytest.raises(ValueError, match="axis weights"):
        axis_colors(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="integers"):
        label_colors(np.array([0.5]))


def test_labels_and_axes():
    np.testing.assert_allclose(label_colors(np.array([3, 23])), PALETTE[[3, 3]])
    assert np.allclose(label_colors(np.array([0, 7]), ignore=0)[0], GREY)
    rgb = axis_colors(np.array([[0.0, 2.0, 0.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(rgb, [[0, 1, 0], [1 / 3, 1 / 3, 1 / 3]])
