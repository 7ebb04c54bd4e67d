"""results.png: every configuration named once per panel, no two names on top
of each other nor on another configuration's error bars, and the legend inside
the figure, even for seven long config names whose markers sit on top of each
other (the ModelNet10 grid)."""

import math

from matplotlib.text import Text
from matplotlib.transforms import Bbox

from pointsam.viz.sweep_figure import sweep_figure

NAMES = ["modelnet10_pointnet2_lite"] + [
    f"modelnet10_pointnet2_lite_{a}"
    for a in ("channel", "point", "cbam", "axial", "local", "local_global")]


SHORT = ["lite", "channel", "point", "cbam", "axial", "local", "local_global"]


def _rows(points, time_std=None):
    return [{"config": n, "oa_mean": y, "oa_std": 0.01, "params": p,
             "train_time_s_mean": t, "n_seeds": 3,
             "train_time_s_std": 10.0 if time_std is None else time_std[k]}
            for k, (n, (y, p, t)) in enumerate(zip(NAMES, points))]


def _bars(ax):
    """Per configuration (plot order), the pixel boxes of its error-bar segments."""
    out = []
    for c in ax.containers:
        _, _, cols = c.lines
        segs = [s for col in cols for s in col.get_segments()]
        out.append([Bbox(ax.transData.transform(s)) for s in segs])
    return out


def _check(fig, rows):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    legend = fig.legends[0]
    box = legend.get_window_extent(r)
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y0 >= 0
    assert [t.get_text() for t in legend.get_texts()] == [x["config"] for x in rows]
    for ax in fig.axes:
        texts = ax.texts
        assert sorted(t.get_text() for t in texts) == sorted(
            ["lite", "channel", "point", "cbam", "axial", "local", "local_global"][:len(rows)])
        boxes = [Text.get_window_extent(t, r) for t in texts]  # the words, not the line
        for i in range(len(boxes)):
            for j in range(i):
                assert not boxes[i].overlaps(boxes[j]), (texts[i].get_text(),
                                                         texts[j].get_text())
        bars = _bars(ax)
        for t, box in zip(texts, boxes):
            own = SHORT.index(t.get_text())
            for j, segs in enumerate(bars):
                assert j == own or not any(box.overlaps(b) for b in segs), (
                    t.get_text(), SHORT[j])


def test_clustered_markers_get_separate_names_and_the_legend_fits():
    # five configurations within a point of each other, as in the same-seconds grid
    pts = [(0.892, 106e3, 439), (0.910, 108.8e3, 435), (0.904, 106.2e3, 442),
           (0.908, 109e3, 456), (0.536, 478.9e3, 320), (0.810, 209.6e3, 417),
           (0.570, 333.6e3, 276)]
    rows = _rows(pts)
    fig = sweep_figure(rows, "oa", "OA")
    _check(fig, rows)
    # the moved names keep a line back to their marker
    moved = [t for t in fig.axes[0].texts if t.arrow_patch is not None]
    assert moved and all(not math.isclose(t.xyann[1], 5.0) for t in moved)


def test_a_name_at_the_right_edge_is_written_on_the_left():
    rows = _rows([(0.93, 185e3, 497), (0.92, 188e3, 402), (0.935, 413e3, 1102)])
    fig = sweep_figure(rows, "oa", "OA")
    _check(fig, rows)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for ax in fig.axes:
        for t in ax.texts:
            assert Text.get_window_extent(t, r).x1 <= ax.bbox.x1 + 0.5, t.get_text()


def test_a_name_is_not_written_over_another_configurations_error_bar():
    # the same-epochs grid: local_global's name, right of its marker, fell on
    # axial's long training-time bar (35-67 min) just above it
    pts = [(0.8921, 106e3, 722), (0.9104, 108.8e3, 427), (0.9042, 106.2e3, 479),
           (0.9108, 109e3, 420), (0.9247, 478.9e3, 3069), (0.9258, 209.6e3, 1114),
           (0.9225, 333.6e3, 3199)]
    rows = _rows(pts, time_std=[239, 85, 118, 11, 960, 53, 474])
    for r, sd in zip(rows, [0.57, 0.34, 1.38, 0.50, 0.45, 0.17, 0.25]):
        r["oa_std"] = sd / 100
    _check(sweep_figure(rows, "oa", "OA"), rows)
