"""The one PLY reader/writer (plyfile): layouts, custom properties, clear errors."""

import numpy as np
import pytest

from pointsam.data import CloudFormatError, read_cloud
from pointsam.data.io.ply import PlyLayoutError, read_ply_vertices, write_ply_vertices


def _header(fmt, n, props, extra=""):
    lines = ["ply", f"format {fmt} 1.0", f"element vertex {n}"]
    lines += [f"property {t} {name}" for t, name in props]
    return ("\n".join(lines) + "\n" + extra + "end_header\n").encode("ascii")


def test_big_endian_custom_properties_against_numpy(tmp_path):
    g = np.random.default_rng(0)
    dt = np.dtype([("x", ">f4"), ("y", ">f4"), ("z", ">f4"), ("label", ">u2"),
                   ("weight", ">f8")])
    rec = np.zeros(6, dt)
    for k in ("x", "y", "z", "weight"):
        rec[k] = g.normal(size=6)
    rec["label"] = [0, 1, 2, 300, 4, 5]
    p = tmp_path / "be.ply"
    p.write_bytes(_header("binary_big_endian", 6, [("float", "x"), ("float", "y"),
                          ("float", "z"), ("ushort", "label"), ("double", "weight")])
                  + rec.tobytes())
    props, _ = read_ply_vertices(p)
    assert list(props) == ["x", "y", "z", "label", "weight"]
    for k in props:
        assert props[k].dtype.isnative and np.array_equal(props[k], rec[k])
    d = read_cloud(p)
    assert d.y.tolist() == [0, 1, 2, 300, 4, 5]
    np.testing.assert_array_equal(d.pos.numpy(), np.stack(
        [rec["x"], rec["y"], rec["z"]], 1).astype(np.float32))


def test_write_read_round_trip_keeps_types_and_comments(tmp_path):
    cols = {"x": np.arange(4, dtype="f4"), "y": np.zeros(4, "f4"),
            "z": np.ones(4, "f4"), "red": np.array([0, 1, 254, 255], "u1"),
            "pred": np.array([-5, 0, 7, 2**31 - 1], "i4"),
            "conf": np.array([np.nan, 0.5, 1.0, 0.0], "f8")}
    p = write_ply_vertices(tmp_path / "sub" / "r.ply", cols, ["a: end_header", "b"])
    assert p.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    props, comments = read_ply_vertices(p)
    assert comments == ["a: end_header", "b"]
    for k, v in cols.items():
        assert props[k].dtype == v.dtype and np.array_equal(props[k], v, equal_nan=True)
    with pytest.raises(ValueError, match=r"no type for \{'pred': 'int64'\}"):
        write_ply_vertices(tmp_path / "bad.ply", {"pred": np.arange(3)})
    with pytest.raises(ValueError, match="must all be"):
        write_ply_vertices(tmp_path / "bad.ply", {"x": np.zeros(3, "f4"),
                                                  "y": np.zeros(2, "f4")})
    with pytest.raises(ValueError, match="one ASCII line"):
        write_ply_vertices(tmp_path / "bad.ply", cols, ["two\nlines"])


def test_truncated_files_name_file_and_sizes(tmp_path):
    props = [("float", "x"), ("float", "y"), ("float", "z")]
    p = tmp_path / "cut.ply"
    p.write_bytes(_header("binary_little_endian", 5, props) + b"\0" * 50)
    with pytest.raises(CloudFormatError,
                       match=r"cut\.ply: truncated PLY, 5 vertex rows need 60 bytes, "
                             r"found 50"):
        read_ply_vertices(p)
    p.write_bytes(_header("ascii", 3, props) + b"0 0 0\n1 1 1\n")
    with pytest.raises(CloudFormatError, match=r"cut\.ply: truncated PLY, 3 vertex "
                                               r"rows promised, the data ends in row 2"):
        read_ply_vertices(p)
    p.write_bytes(_header("ascii", 2, props) + b"0 0 zero\n1 1 1\n")
    with pytest.raises(CloudFormatError, match=r"cut\.ply: malformed PLY ascii data"):
        read_ply_vertices(p)


@pytest.mark.parametrize("raw, message", [
    (b"", "empty file"),
    (b"solid x\nend_header\n", "not a PLY file"),
    (b"ply\nformat ascii 1.0\ncomment end_header\n", "end_header line"),
    (b"ply\nformat binary_middle_endian 1.0\nend_header\n", "unsupported .*PLY format"),
    (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty quad x\nend_header\n0\n",
     "unknown PLY property type"),
])
def test_bad_headers(tmp_path, raw, message):
    p = tmp_path / "h.ply"
    p.write_bytes(raw)
    with pytest.raises(CloudFormatError, match=rf"h\.ply: .*{message}"):
        read_ply_vertices(p)


def test_layouts_left_to_open3d(tmp_path):
    p = tmp_path / "lst.ply"
    p.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n"
                  b"property list uchar int idx\nend_header\n1 2 3 4\n")
    with pytest.raises(PlyLayoutError, match="list property in the vertex element"):
        read_ply_vertices(p)
    p = tmp_path / "face_first.ply"
    p.write_bytes(b"ply\nformat ascii 1.0\nelement face 0\n"
                  b"property list uchar int vertex_indices\nelement vertex 2\n"
                  b"property float x\nproperty float y\nproperty float z\nend_header\n"
                  b"0 0 0\n1 2 3\n")
    with pytest.raises(PlyLayoutError, match="first element must be 'vertex'"):
        read_ply_vertices(p)
    o3d = pytest.importorskip("open3d")
    assert np.asarray(o3d.io.read_point_cloud(str(p)).points).shape == (2, 3)
    assert read_cloud(p).pos.tolist() == [[0, 0, 0], [1, 2, 3]]  # through Open3D


def test_mesh_vertices_are_the_cloud(tmp_path):
    o3d = pytest.importorskip("open3d")
    mesh = o3d.geometry.TriangleMesh.create_box()
    p = tmp_path / "box.ply"
    o3d.io.write_triangle_mesh(str(p), mesh, write_ascii=False)
    np.testing.assert_allclose(read_cloud(p).pos.numpy(),
                               np.asarray(mesh.vertices), atol=1e-6)
