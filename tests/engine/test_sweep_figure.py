"""results.png: every configuration named once per panel, no two names on top
of each other, and the legend inside the figure, even for seven long config
names whose markers sit on top of each other (the ModelNet10 grid)."""

import math

from matplotlib.text import Text

from pointsam.engine.sweep_report import figure

NAMES = ["modelnet10_pointnet2_lite"] + [
    f"modelnet10_pointnet2_lite_{a}"
    for a in ("channel", "point", "cbam", "axial", "local", "local_global")]


def _rows(points):
    return [{"config": n, "oa_mean": y, "oa_std": 0.01, "params": p,
             "train_time_s_mean": t, "train_time_s_std": 10.0, "n_seeds": 3}
            for n, (y, p, t) in zip(NAMES, points)]


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


def test_clustered_markers_get_separate_names_and_the_legend_fits():
    # five configurations within a point of each other, as in the same-seconds grid
    pts = [(0.892, 106e3, 439), (0.910, 108.8e3, 435), (0.904, 106.2e3, 442),
           (0.908, 109e3, 456), (0.536, 478.9e3, 320), (0.810, 209.6e3, 417),
           (0.570, 333.6e3, 276)]
    rows = _rows(pts)
    fig = figure(rows, "cls")
    _check(fig, rows)
    # the moved names keep a line back to their marker
    moved = [t for t in fig.axes[0].texts if t.arrow_patch is not None]
    assert moved and all(not math.isclose(t.xyann[1], 5.0) for t in moved)


def test_a_name_at_the_right_edge_is_written_on_the_left():
    rows = _rows([(0.93, 185e3, 497), (0.92, 188e3, 402), (0.935, 413e3, 1102)])
    fig = figure(rows, "cls")
    _check(fig, rows)
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for ax in fig.axes:
        for t in ax.texts:
            assert Text.get_window_extent(t, r).x1 <= ax.bbox.x1 + 0.5, t.get_text()
