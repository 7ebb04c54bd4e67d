"""The reliability table: bad inputs across every layer, each with its exact error.

One row per bad input: ``(layer, id, call, error class, message fragment)``. A row
passes when ``call(env)`` raises exactly that class (not a subclass of another
kind, not a torch internal error) with the fragment in its message. The CLI rows
run ``pointsam`` with ``POINTSAM_DEBUG=1`` (so the exception itself is checked)
and once more without it: exit code 2 and one ``pointsam: error:`` line. The
count of rows is what docs/guides/reliability.md states.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from pointsam import ops
from pointsam.cli import main
from pointsam.data import CloudFormatError, read_cloud
from pointsam.engine.checkpoint import (
    FORMAT,
    VERSION,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from pointsam.engine.config import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config,
)
from pointsam.engine.rundir import RunDirError
from pointsam.engine.trainer import TrainingDiverged  # noqa: F401  (public name)

NAN = float("nan")


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ------------------------------------------------------------------ helpers
def _pos(n=20, seed=0, dtype=torch.float32):
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _model(name="pointnet2_lite_cls", **kw):
    from pointsam.models import create_model

    torch.manual_seed(0)
    return create_model(name, **{"num_classes": 4, **kw}).eval()


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _pcd(n_header: int, n_data: int) -> bytes:
    head = ("VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
            f"WIDTH {n_header}\nHEIGHT 1\nPOINTS {n_header}\nDATA binary\n")
    return head.encode() + np.ones((n_data, 3), "<f4").tobytes()


def _binf(env, name: str, arr: np.ndarray) -> Path:
    p = env.dir / name
    arr.astype("<f4").tofile(p)
    return p


def _far_scan() -> np.ndarray:
    """A 4-column scan 5 km from the origin: no width reads a sensor frame."""
    g = np.random.default_rng(0)
    return np.hstack([g.uniform(5000, 5080, (64, 3)), g.uniform(0, 1, (64, 1))])


def _several_widths() -> np.ndarray:
    """40 points x y z in [0, 3] m, r g b in [0, 1]: read as 4, 5 or 6 columns,
    every value is a plausible coordinate or intensity, and 40 rows are too few
    for the row phases to tell the widths apart."""
    g = np.random.default_rng(0)
    return np.hstack([g.uniform(0, 3, (40, 3)), g.uniform(0, 1, (40, 3))])


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A folder, a pointnet2_lite_cls checkpoint (12 classes, untrained, with the
    synthetic set's class names) and one whose class names are other ones."""
    from pointsam.data import SyntheticShapes
    from pointsam.models import create_model

    d = tmp_path_factory.mktemp("bad")
    cfg = config_from_dict({
        "model": {"name": "pointnet2_lite_cls"},
        "data": {"name": "synthetic_shapes", "num_points": 64, "batch_size": 8,
                 "args": {"num_samples": 12, "num_points": 128}},
        "train": {"epochs": 1, "out_dir": str(d / "run"), "progress": False,
                  "tensorboard": False}})
    torch.manual_seed(0)
    model = create_model("pointnet2_lite_cls", num_classes=12)
    names = list(SyntheticShapes(num_samples=12).classes)

    def ck(path, class_names):
        meta = {"task": "cls", "num_classes": 12, "model_name": "pointnet2_lite_cls",
                "model_args": {"num_classes": 12}, "class_names": class_names,
                "category_names": []}
        return save_checkpoint({"format": FORMAT, "version": VERSION,
                                "config": config_to_dict(cfg), "meta": meta,
                                "model": model.state_dict()}, path)

    return SimpleNamespace(dir=d, ck=str(ck(d / "ck.pt", names)),
                           other=str(ck(d / "other.pt", [f"class{i}" for i in range(12)])), cfg=cfg)


def _cli(*argv):
    """A CLI row: the command line, run through ``pointsam.cli.main``."""
    def call(env):
        return main([a(env) if callable(a) else a for a in argv])
    call.cli = True
    return call


def _npy(name, arr):
    def make(env):
        p = env.dir / name
        np.save(p, np.asarray(arr, np.float32))
        return str(p)
    return make


def _file(name, content):
    def make(env):
        return str(_write(env.dir / name, content))
    return make


def _ck(env):
    return env.ck


# ------------------------------------------------------------------ the table
def _knn(**kw):
    return lambda env: ops.knn(kw.pop("pos", _pos()), kw.pop("k", 4), **kw)


def _bad_batch(values):
    return torch.tensor(values)


def _model_call(pos=None, batch=None, x=None, model=None, data=None, **mk):
    def call(env):
        m = _model(**mk) if model is None else model()
        if data is not None:
            return m(data())
        kw = {"pos": _pos() if pos is None else pos()}
        if batch is not None:
            kw["batch"] = batch
        if x is not None:
            kw["x"] = x()
        return m(**kw)
    return call


def _module(cls_name, *args, x=None, pos=None, **kw):
    def call(env):
        import pointsam.nn as pnn

        torch.manual_seed(0)
        m = getattr(pnn, cls_name)(*args, **kw)
        p = _pos(20) if pos is None else pos
        return m(torch.randn(20, 16) if x is None else x(), p, None)
    return call


def _x_nan():
    x = torch.randn(20, 16)
    x[3, 5] = NAN
    return x


def _x_inf3():
    x = torch.randn(20, 3)
    x[0, 0] = float("inf")
    return x


def _pos_nan():
    p = _pos()
    p[4, 1] = NAN
    return p


def _parts_no_category(env):
    m = _model("pointnet2_lite_partseg", num_classes=5, num_categories=2)
    return m(pos=_pos(40))


def _parts_bad_category(env):
    m = _model("pointnet2_lite_partseg", num_classes=5, num_categories=2)
    return m(Batch.from_data_list([Data(pos=_pos(40), category=torch.tensor([7]))]))


def _empty_cloud_in_batch(env):
    # PyG Batch of three clouds whose middle one has no points: num_graphs=3
    a, c = Data(pos=_pos(20, 1)), Data(pos=_pos(20, 2))
    b = Data(pos=torch.zeros(0, 3))
    return _model()(Batch.from_data_list([a, b, c]))


def _trailing_empty_cloud(env):
    a, b = Data(pos=_pos(20, 1)), Data(pos=torch.zeros(0, 3))
    return _model()(Batch.from_data_list([a, b]))


def _config(text):
    def call(env):
        p = env.dir / "c.yaml"
        p.write_text(text)
        return load_config(p)
    return call


def _ck_file(make):
    def call(env):
        p = env.dir / "x.pt"
        make(p)
        return load_checkpoint(p)
    return call


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def _evil(p):
    torch.save({"format": FORMAT, "x": _Evil()}, p)


def _new_version(p):
    torch.save({"format": FORMAT, "version": VERSION + 1}, p)


def _wrong_weights(env):
    from pointsam.engine.predict import load_trained

    st = load_checkpoint(env.ck)
    st["meta"] = {**st["meta"], "model_name": "dgcnn_lite_cls"}
    p = save_checkpoint(st, env.dir / "wrong.pt")
    return load_trained(p)


def _build_unknown_dataset(env):
    from pointsam.engine.builders import build_dataset

    cfg = config_from_dict({})
    cfg.data.name = "nosuchdataset"  # bypassing the typed config, as viz did
    return build_dataset(cfg, "test")


CASES = [
    # ----- ops
    ("ops", "knn-nan-pos", _knn(pos=_pos_nan()), ValueError,
     "pos contains NaN or Inf coordinates (1 points)"),
    ("ops", "knn-2d-pos", _knn(pos=torch.zeros(5, 2)), ValueError,
     "pos must have shape [N, 3], got [5, 2]"),
    ("ops", "knn-int-pos", _knn(pos=torch.zeros(5, 3, dtype=torch.long)), ValueError,
     "pos must be a floating-point tensor, got torch.int64"),
    ("ops", "knn-list-pos", _knn(pos=[[0.0, 0, 0]]), TypeError,
     "pos must be a torch.Tensor, got list"),
    ("ops", "knn-empty", _knn(pos=torch.zeros(0, 3)), ValueError,
     "pos is empty (0 points)"),
    ("ops", "knn-k0", _knn(k=0), ValueError, "k must be an integer >= 1, got 0"),
    ("ops", "knn-unsorted-batch", _knn(batch=_bad_batch([1] * 10 + [0] * 10)),
     ValueError, "batch must be sorted"),
    ("ops", "knn-short-batch", _knn(batch=_bad_batch([0] * 5)), ValueError,
     "batch has 5 entries but the points number 20"),
    ("ops", "knn-float-batch", _knn(batch=torch.zeros(20)), ValueError,
     "batch must be int64"),
    ("ops", "knn-backend", _knn(backend="faiss"), ValueError,
     "unknown knn backend 'faiss'"),
    ("ops", "batch-size-too-small",
     lambda env: ops.batch_size_of(_bad_batch([0, 1, 2]), 2), ValueError,
     "batch_size=2 but batch holds cloud id 2"),
    # ----- nn
    ("nn", "cbam-nan-x", _module("CBAM", 16, x=_x_nan), ValueError,
     "x contains NaN or Inf values (1 points)"),
    ("nn", "local-attn-nan-x", _module("LocalAttention", 16, k=4, x=_x_nan),
     ValueError, "x contains NaN or Inf values"),
    ("nn", "gate-channels", _module("ChannelGate", 8), ValueError,
     "x has 16 channels, expected 8"),
    ("nn", "rows-mismatch", _module("PointGate", 16, x=lambda: torch.randn(7, 16)),
     ValueError, "x has 7 rows but pos has 20 points"),
    ("nn", "int-x", _module("CBAM", 16, x=lambda: torch.ones(20, 16, dtype=torch.long)),
     ValueError, "x must be a floating-point tensor, got torch.int64"),
    ("nn", "mhpa-too-large", _module("MultiHeadPointAttention", 16, num_heads=2,
                                     max_points=10), ValueError,
     "more than max_points=10 of MultiHeadPointAttention"),
    ("nn", "nan-pos-module", _module("CBAM", 16, pos=_pos_nan()), ValueError,
     "pos contains NaN or Inf coordinates"),
    # ----- models
    ("models", "float64-pos", _model_call(pos=lambda: _pos(dtype=torch.float64)),
     TypeError, "pos is torch.float64 but the model's weights are torch.float32"),
    ("models", "float16-pos", _model_call(pos=lambda: _pos(dtype=torch.float16)),
     TypeError, "pos is torch.float16 but the model's weights are torch.float32"),
    ("models", "batch-skips-a-cloud",
     _model_call(batch=_bad_batch([0] * 10 + [2] * 10)), ValueError,
     "batch skips cloud id(s) 1 of 0..2"),
    ("models", "empty-cloud-in-batch", _empty_cloud_in_batch, ValueError,
     "batch skips cloud id(s) 1 of 0..2"),
    ("models", "trailing-empty-cloud", _trailing_empty_cloud, ValueError,
     "batch skips cloud id(s) 1 of 0..1"),
    ("models", "nan-x-with-features", _model_call(x=_x_inf3, in_channels=3),
     ValueError, "x contains NaN or Inf values (1 points)"),
    ("models", "missing-x", _model_call(in_channels=3), ValueError,
     "built with in_channels=3 but the input has no x"),
    ("models", "float64-x", _model_call(x=lambda: torch.randn(20, 3).double(),
                                        in_channels=3),
     TypeError, "x is torch.float64 but the model's weights are torch.float32"),
    ("models", "nan-pos", _model_call(pos=_pos_nan), ValueError,
     "pos contains NaN or Inf coordinates"),
    ("models", "no-pos", _model_call(data=lambda: Data(x=torch.ones(3, 3))),
     ValueError, "the input has no pos"),
    ("models", "partseg-no-category", _parts_no_category, ValueError,
     "part segmentation needs the shape category"),
    ("models", "partseg-bad-category", _parts_bad_category, ValueError,
     "category values must be in [0, 2), got [7]"),
    ("models", "unknown-model", lambda env: _model("pointnet3_cls"), ValueError,
     "pointnet3_cls"),
    # ----- data readers
    ("data", "pcd-header-short-of-data", lambda env: read_cloud(
        _write(env.dir / "long.pcd", _pcd(50, 100))), CloudFormatError,
     "PCD header says 50 points (600 bytes after the header), but the data "
     "holds 1200 bytes (100 points)"),
    ("data", "pcd-truncated", lambda env: read_cloud(
        _write(env.dir / "short.pcd", _pcd(100, 50))), CloudFormatError,
     "truncated PCD, 100 points need 1200 bytes after the header, found 600"),
    ("data", "bin-size", lambda env: read_cloud(
        _write(env.dir / "s.bin", b"\0" * 20)), CloudFormatError,
     "20 bytes is not a multiple of 16"),
    ("data", "bin-empty", lambda env: read_cloud(_write(env.dir / "e.bin", b"")),
     CloudFormatError, "empty file"),
    ("data", "label-length", lambda env: __import__(
        "pointsam.data", fromlist=["read_kitti_label"]).read_kitti_label(
        _write(env.dir / "l.label", b"\0" * 12), num_points=4), CloudFormatError,
     "label length mismatch, 3 labels for a scan of 4 points"),
    ("data", "npy-2-columns", lambda env: read_cloud(_npy("two.npy",
                                                          np.zeros((4, 2)))(env)),
     CloudFormatError, ".npy must be [N, 3 + C], got (4, 2)"),
    ("data", "xyz-nan", lambda env: read_cloud(
        _write(env.dir / "n.xyz", "0 0 0\nnan 1 1\n")), CloudFormatError,
     "1 points have NaN or Inf coordinates"),
    ("data", "unknown-suffix", lambda env: read_cloud(
        _write(env.dir / "c.vtk", "x")), ValueError,
     "unknown point-cloud suffix '.vtk'"),
    ("data", "bin-no-sensor-like-width", lambda env: read_cloud(
        _binf(env, "far.bin", _far_scan())), CloudFormatError,
     "no reading as float32 columns looks like a sensor scan (4 columns: 99% of "
     "the points within"),
    ("data", "bin-several-plausible-widths", lambda env: read_cloud(
        _binf(env, "several.bin", _several_widths())), CloudFormatError,
     "cannot tell how many float32 columns it holds, 3 readings look like a scan"),
    ("data", "off-is-a-mesh", lambda env: read_cloud(
        _write(env.dir / "m.off", "OFF\n0 0 0\n")), ValueError,
     "an OFF file is a mesh"),
    # ----- configs
    ("config", "empty-file", _config(""), ConfigError, "is empty: a config names"),
    ("config", "comments-only", _config("# todo\n"), ConfigError, "is empty"),
    ("config", "not-a-mapping", _config("- a\n- b\n"), ConfigError,
     "a config must be a mapping of sections"),
    ("config", "unknown-key", _config("train: {epohcs: 3}\n"), ConfigError,
     "unknown key 'train.epohcs'"),
    ("config", "bad-choice", _config("optim: {scheduler: warm}\n"), ConfigError,
     "valid values: cosine, step, none"),
    ("config", "bad-yaml", _config("train: [\n"), ConfigError, "not valid YAML"),
    ("config", "unknown-dataset", _build_unknown_dataset, ConfigError,
     "unknown dataset 'nosuchdataset'; known: modelnet10, modelnet40"),
    # ----- checkpoints
    ("checkpoint", "missing", lambda env: load_checkpoint(env.dir / "no.pt"),
     CheckpointError, "checkpoint not found"),
    ("checkpoint", "text-file", _ck_file(lambda p: p.write_text("hello")),
     CheckpointError, "not a torch.save archive"),
    ("checkpoint", "raw-pickle", _ck_file(
        lambda p: p.write_bytes(pickle.dumps({"a": 1}))), CheckpointError,
     "never unpickles such files"),
    ("checkpoint", "pickled-code", _ck_file(_evil), CheckpointError,
     "contains pickled code or objects"),
    ("checkpoint", "not-pointsam", _ck_file(lambda p: torch.save({"w": 1}, p)),
     CheckpointError, "is not a pointsam checkpoint"),
    ("checkpoint", "newer-version", _ck_file(_new_version), CheckpointError,
     f"has checkpoint version {VERSION + 1}"),
    ("checkpoint", "weights-of-another-model", _wrong_weights, CheckpointError,
     "do not fit the model built here, dgcnn_lite_cls"),
    # ----- the command line
    ("cli", "eval-model-override", _cli("eval", _ck, "--set",
                                        "model.args.attention=cbam"),
     ConfigError, "eval --set model.args.attention=cbam: the model"),
    ("cli", "eval-other-classes", _cli("eval", lambda env: env.other),
     ValueError, "synthetic_shapes:test has other class names than"),
    ("cli", "eval-votes", _cli("eval", _ck, "--votes", "0"), ValueError,
     "--votes must be >= 1"),
    ("cli", "predict-one-point", _cli("predict", _ck, _npy("one.npy", [[1, 2, 3]]),
                                      "--out", "o.ply"),
     ValueError, "the cloud has 1 points, 1 distinct; this model needs at least 16"),
    ("cli", "predict-three-points", _cli("predict", _ck, _npy("three.npy", np.eye(3)),
                                         "--out", "o.ply"),
     ValueError, "the cloud has 3 points, 3 distinct"),
    ("cli", "predict-500-copies", _cli("predict", _ck,
                                       _npy("same.npy", np.ones((500, 3))),
                                       "--out", "o.ply"),
     ValueError, "the cloud has 500 points, 1 distinct"),
    ("cli", "viz-unknown-dataset", _cli("viz", _ck, "nosuchdataset:test:0", "--out",
                                        lambda env: str(env.dir / "viz")),
     ValueError, "unknown dataset 'nosuchdataset'; known: modelnet10"),
    ("cli", "viz-out-is-a-file", _cli("viz", _ck, ":test:0", "--out",
                                      _file("taken.txt", "x")),
     ValueError, "is an existing file; --out must be a directory"),
    ("cli", "train-resume-and-overwrite", _cli("train", _file("t.yaml", "train: {}\n"),
                                               "--resume", "--overwrite"),
     ValueError, "give one of them"),
    ("cli", "train-out-dir-is-a-file", _cli(
        "train", _file("f.yaml", "data: {name: synthetic_shapes}\n"
                       "train: {out_dir: taken.txt}\n")), RunDirError,
     "exists and is not a folder"),
    ("cli", "train-config-without-data", _cli(
        "train", _file("m.yaml", "model: {name: pointnet2_lite_cls}\n")),
     ConfigError, "m.yaml has no data section: a config names the dataset it "
     "trains on"),
    ("cli", "train-config-without-data-name", _cli(
        "train", _file("n.yaml", "data: {batch_size: 4}\n")),
     ConfigError, "n.yaml has no data.name: a config names the dataset"),
    ("cli", "predict-bin-of-several-widths", _cli(
        "predict", _ck, lambda env: str(_binf(env, "several.bin", _several_widths())),
        "--out", "o.ply"), CloudFormatError,
     "3 readings look like a scan (4 columns: plausible"),
    ("cli", "train-empty-config", _cli("train", _file("e.yaml", "")), ConfigError,
     "is empty"),
]


@pytest.mark.parametrize("layer, name, call, error, fragment", CASES,
                         ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_bad_input(env, monkeypatch, layer, name, call, error, fragment):
    monkeypatch.chdir(env.dir)
    if getattr(call, "cli", False):
        monkeypatch.setenv("POINTSAM_DEBUG", "1")
    with pytest.raises(Exception) as info:
        call(env)
    assert type(info.value) is error, (type(info.value), info.value)
    assert fragment in str(info.value), str(info.value)


CLI_CASES = [c for c in CASES if getattr(c[2], "cli", False)]


@pytest.mark.parametrize("layer, name, call, error, fragment", CLI_CASES,
                         ids=[c[1] for c in CLI_CASES])
def test_cli_bad_input_is_one_line(env, monkeypatch, capsys, layer, name, call,
                                   error, fragment):
    monkeypatch.chdir(env.dir)
    monkeypatch.delenv("POINTSAM_DEBUG", raising=False)
    assert call(env) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines()
           if not ln.startswith("[pointsam]")]
    assert len(err) == 1 and err[0].startswith("pointsam: error: "), err
    assert fragment in err[0]


DOC = Path(__file__).resolve().parents[1] / "docs" / "bad_inputs.md"


def cases_markdown() -> str:
    """The cases of :data:`CASES` as the markdown table of ``docs/bad_inputs.md``
    (``python -m tests.test_bad_inputs`` writes it; a test keeps it equal)."""
    lines = ["# Bad inputs and what pointsam answers", "",
             "Every row is a case of `tests/test_bad_inputs.py`, run by the test suite: "
             "the input, the exception class it raises (through the command line: "
             "one `pointsam: error:` line, exit code 2) and a fragment of the "
             "message. Regenerate with `python -m tests.test_bad_inputs`.", "",
             f"{len(CASES)} cases.", "",
             "| layer | case | raises | message contains | command line |",
             "|---|---|---|---|---|"]
    for layer, name, call, error, fragment in CASES:
        frag = fragment.replace("|", "\\|").replace("\n", " ")
        cli = "one line, exit 2" if getattr(call, "cli", False) else ""
        lines.append(f"| {layer} | `{name}` | `{error.__name__}` | {frag} | {cli} |")
    return "\n".join(lines) + "\n"


def test_the_docs_table_lists_every_case():
    assert DOC.is_file(), "write it: python -m tests.test_bad_inputs"
    assert DOC.read_text() == cases_markdown(), (
        "docs/bad_inputs.md is out of date: python -m tests.test_bad_inputs")


def test_the_table_holds_at_least_40_cases():
    layers = {c[0] for c in CASES}
    assert len(CASES) >= 40 and layers == {"ops", "nn", "models", "data", "config",
                                           "checkpoint", "cli"}
    assert len({c[1] for c in CASES}) == len(CASES)  # unique names


# ------------------------------------------------------------------ warnings
def test_model_without_features_warns_once_about_x():
    m = _model()
    with pytest.warns(UserWarning, match=re.escape(
            "the input has x [N, 3] but the model was built without input features")):
        m(pos=_pos(), x=torch.randn(20, 3))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m(pos=_pos(), x=torch.randn(20, 3))  # once per model


def _xyzrgb(path, n=64, seed=0):
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(-20, 20, (n, 3))
    rgb = rng.integers(0, 256, (n, 3))
    np.hstack([xyz, rgb]).astype("<f4").tofile(path)
    return path


def test_six_column_bin_is_read_as_six(tmp_path):
    import warnings

    p = _xyzrgb(tmp_path / "rgb.bin")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = read_cloud(p)  # as 4 columns the 4th would take y (< 0): refused
    assert d.pos.shape == (64, 3) and d.x.shape == (64, 3)
    assert read_cloud(p, bin_columns=6).pos.tolist() == d.pos.tolist()


def test_four_column_bin_does_not_warn(tmp_path):
    import warnings

    rng = np.random.default_rng(0)
    kitti = np.hstack([rng.uniform(-40, 40, (96, 3)), rng.uniform(0, 1, (96, 1))])
    kitti.astype("<f4").tofile(tmp_path / "k.bin")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_cloud(tmp_path / "k.bin").x.shape == (96, 1)


def test_predict_says_how_it_read_the_columns(env, tmp_path, capsys):
    rng = np.random.default_rng(0)
    scan = np.hstack([rng.normal(size=(200, 3)), rng.uniform(0, 1, (200, 1))])
    scan.astype("<f4").tofile(tmp_path / "scan.bin")
    assert main(["predict", env.ck, str(tmp_path / "scan.bin"), "--out",
                 str(tmp_path / "p.ply")]) == 0
    assert "read 4 columns: x y z remission (200 points)" in capsys.readouterr().out


def test_cli_warning_is_one_line(env, tmp_path, capsys, shared_data):
    # a street scan given to an object classifier (trained on 64-point shapes)
    scan = shared_data / "kitti_object_sample/training/velodyne/004139.bin"
    assert main(["predict", env.ck, str(scan), "--out", str(tmp_path / "p.ply")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        "pointsam: warning: this cloud looks like a LiDAR scene"), err


def test_eval_of_an_old_checkpoint_without_class_names_warns(env, capsys):
    st = load_checkpoint(env.ck)
    st["meta"] = {k: v for k, v in st["meta"].items()
                  if k not in ("class_names", "category_names")}
    old = save_checkpoint(st, env.dir / "old.pt")
    assert main(["eval", str(old)]) == 0
    err = capsys.readouterr().err
    assert f"pointsam: warning: {old} stores no class names (an older checkpoint)" \
        in err


if __name__ == "__main__":
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(cases_markdown())
    print(f"wrote {DOC} ({len(CASES)} cases)")
