import numpy as np
import pytest
import torch

from pointsam.viz import colormap, export_ply, read_ply


def test_ply_round_trip_points_colours_weights(tmp_path):
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(50, 3, generator=g)
    w = torch.rand(50, generator=g)
    w[3] = float("nan")
    lab = torch.randint(0, 5, (50,), generator=g)
    p = export_ply(tmp_path / "a.ply", pos, weights={"weight": w, "other": -w},
                   labels=lab, pred=lab.flip(0), vmin=0.0, vmax=1.0)
    back = read_ply(p)
    np.testing.assert_allclose(back["pos"], pos.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(back["weight"], w.numpy())  # NaN kept as NaN
    np.testing.assert_array_equal(back["other"], -w.numpy())
    np.testing.assert_array_equal(back["label"], lab.numpy())
    np.testing.assert_array_equal(back["pred"], lab.flip(0).numpy())
    expect = (colormap(w, 0.0, 1.0) * 255).round() / 255
    np.testing.assert_allclose(back["colors"], expect)


def test_ply_is_read_by_open3d(tmp_path):
    o3d = pytest.importorskip("open3d")
    pos = np.random.default_rng(0).normal(size=(20, 3))
    cols = np.random.default_rng(1).integers(0, 256, (20, 3)) / 255.0
    p = export_ply(tmp_path / "b.ply", pos, colors=cols, weights=np.arange(20.0))
    pc = o3d.io.read_point_cloud(str(p))
    np.testing.assert_allclose(np.asarray(pc.points), pos, atol=1e-5)
    np.testing.assert_allclose(np.asarray(pc.colors), cols, atol=1e-6)


def test_multi_column_weights_and_bad_input(tmp_path):
    w = np.random.default_rng(0).random((10, 3))
    back = read_ply(export_ply(tmp_path / "c.ply", np.zeros((10, 3)), weights=w))
    for i in range(3):
        np.testing.assert_allclose(back[f"weight_{i}"], w[:, i].astype(np.float32))
    with pytest.raises(ValueError, match="must be \\[10\\]"):
        export_ply(tmp_path / "d.ply", np.zeros((10, 3)), weights={"w": np.zeros(9)})
    with pytest.raises(ValueError, match="property name"):
        export_ply(tmp_path / "d.ply", np.zeros((10, 3)), weights={"red": np.zeros(10)})
    with pytest.raises(ValueError, match="NaN or Inf"):
        export_ply(tmp_path / "d.ply", np.full((2, 3), np.nan))
    bad = tmp_path / "t.ply"
    bad.write_bytes((tmp_path / "c.ply").read_bytes()[:-20])
    with pytest.raises(ValueError, match="truncated"):
        read_ply(bad)


def test_comment_containing_end_header_round_trips(tmp_path):
    # predict writes class names into comments; the words "end_header" inside a
    # comment must not end the header (only a line that is exactly end_header)
    pos = np.random.default_rng(0).normal(size=(7, 3))
    comments = ["classes: end_header, element vertex 3, property float x",
                "end_header"]
    p = export_ply(tmp_path / "c.ply", pos, weights=np.arange(7.0),
                   labels=np.arange(7), comments=comments)
    back = read_ply(p)
    np.testing.assert_allclose(back["pos"], pos, atol=1e-6)
    np.testing.assert_array_equal(back["weight"], np.arange(7.0, dtype=np.float32))
    np.testing.assert_array_equal(back["label"], np.arange(7))
    for bad in ("two\nlines", "carriage\rreturn"):
        with pytest.raises(ValueError, match="one ASCII line"):
            export_ply(tmp_path / "bad.ply", pos, comments=[bad])


def test_read_ply_header_lines(tmp_path):
    # CRLF header lines and an ASCII body; a file without an end_header line
    text = ("ply\r\nformat ascii 1.0\r\ncomment end_header here\r\n"
            "element vertex 2\r\nproperty float x\r\nproperty float y\r\n"
            "property float z\r\nend_header\r\n1 2 3\r\n4 5 6\r\n")
    (tmp_path / "a.ply").write_bytes(text.encode("ascii"))
    np.testing.assert_allclose(read_ply(tmp_path / "a.ply")["pos"],
                               [[1, 2, 3], [4, 5, 6]])
    (tmp_path / "b.ply").write_bytes(b"ply\nformat ascii 1.0\ncomment end_header\n")
    with pytest.raises(ValueError, match="end_header line"):
        read_ply(tmp_path / "b.ply")
    (tmp_path / "c.ply").write_bytes(b"solid x\nend_header\n")
    with pytest.raises(ValueError, match="not a PLY"):
        read_ply(tmp_path / "c.ply")
