"""`pointsam predict SOURCE DIR_OR_GLOB --out OUT_DIR` (pointsam/cli/_predict_many.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pointsam.cli import main
from pointsam.cli._predict_many import expand_inputs, is_many
from pointsam.cli.predict import memory_estimate

CHAIRS = Path("/work/shared/data/modelnet10_pcd_1024/ModelNet10/pcd/chair/test")
MODEL = ["--model", "pointnet2_lite_cbam_modelnet10"]
STEMS = ["chair_0890", "chair_0891", "chair_0892"]

pytestmark = pytest.mark.skipif(not CHAIRS.is_dir(), reason="ModelNet10 PCD not here")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for s in STEMS:
        shutil.copy(CHAIRS / f"{s}.pcd", d / f"{s}.pcd")
    (d / "broken.pcd").write_text("not a point cloud\n")
    (d / "notes.md").write_text("not a cloud suffix: left out\n")
    return d


def _probs(out: Path) -> dict[str, list[float]]:
    return {s: json.loads((out / f"{s}.json").read_text())["probs"] for s in STEMS}


def test_folder_writes_one_output_per_file_and_lists_the_bad_one(folder, tmp_path,
                                                                  capsys):
    out = tmp_path / "out"
    assert main(["predict", *MODEL, str(folder), "--out", str(out)]) == 1
    cap = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}.ply" for s in STEMS] + [f"{s}.json" for s in STEMS])
    for s in STEMS:
        assert json.loads((out / f"{s}.json").read_text())["name"] == "chair"
    assert "1 of 4 files failed" in cap.err
    listing = cap.err[cap.err.index("1 of 4 files failed"):]
    assert f"{folder / 'broken.pcd'}: " in listing and "PCD" in listing
    assert "notes.md" not in cap.out + cap.err

    # a second run skips the 3 finished ones; only the bad file is tried again
    before = {s: (out / f"{s}.ply").stat().st_mtime_ns for s in STEMS}
    assert main(["predict", *MODEL, str(folder), "--out", str(out)]) == 1
    cap = capsys.readouterr()
    assert "skipping 3 whose output exists" in cap.out
    assert "1 of 1 file failed" in cap.err
    assert {s: (out / f"{s}.ply").stat().st_mtime_ns for s in STEMS} == before

    # --overwrite redoes them, with the same answer
    probs = _probs(out)
    (folder / "broken.pcd").unlink()
    assert main(["predict", *MODEL, str(folder), "--out", str(out),
                 "--overwrite"]) == 0
    cap = capsys.readouterr()
    assert "skipping" not in cap.out and "wrote 3 outputs" in cap.out
    assert all((out / f"{s}.ply").stat().st_mtime_ns != before[s] for s in STEMS)
    assert _probs(out) == probs


def test_glob_takes_its_matches(folder, tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["predict", *MODEL, str(folder / "chair_089[01].pcd"), "--out",
                 str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.ply")) == ["chair_0890.ply",
                                                          "chair_0891.ply"]
    assert "2 input files" in capsys.readouterr().out


def test_jobs_2_gives_the_same_predictions_as_jobs_1(folder, tmp_path):
    (folder / "broken.pcd").unlink()
    one, two = tmp_path / "j1", tmp_path / "j2"
    assert main(["predict", *MODEL, str(folder), "--out", str(one)]) == 0
    assert main(["predict", *MODEL, str(folder), "--out", str(two),
                 "--jobs", "2"]) == 0
    p1, p2 = _probs(one), _probs(two)
    for s in STEMS:
        assert p1[s] == pytest.approx(p2[s], abs=1e-6)


def test_out_must_be_a_folder_for_a_folder(folder, tmp_path, capsys):
    f = tmp_path / "x.ply"
    f.write_text("")
    assert main(["predict", *MODEL, str(folder), "--out", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err and f.read_text() == ""
    assert main(["predict", *MODEL, str(folder), "--out",
                 str(tmp_path / "new.ply")]) == 2
    assert "give a folder for --out" in capsys.readouterr().err
    assert not (tmp_path / "new.ply").exists()


def test_empty_match_and_empty_folder_are_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["predict", *MODEL, str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "holds no cloud files" in capsys.readouterr().err
    assert main(["predict", *MODEL, str(tmp_path / "*.pcd"), "--out",
                 str(tmp_path / "o")]) == 2
    assert "no file matches" in capsys.readouterr().err


def test_outputs_may_not_overwrite_inputs(tmp_path, capsys):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.ply").write_bytes(b"ply\n")  # the output a.ply would replace it
    assert main(["predict", *MODEL, str(d), "--out", str(d)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    shutil.copy(CHAIRS / "chair_0890.pcd", d / "a.pcd")  # two inputs, one output
    assert main(["predict", *MODEL, str(d), "--out", str(tmp_path / "o")]) == 2
    assert "would both be written" in capsys.readouterr().err
    assert (d / "a.ply").read_bytes() == b"ply\n"


def test_one_file_keeps_the_one_file_form(tmp_path, capsys):
    src = CHAIRS / "chair_0890.pcd"
    assert not is_many(str(src), str(tmp_path / "o.ply"))
    assert is_many(str(src), str(tmp_path))  # an existing folder: NAME.ply in it
    assert is_many(str(tmp_path / "*.pcd"), str(tmp_path / "o"))
    assert main(["predict", *MODEL, str(src), "--out", str(tmp_path / "o.ply")]) == 0
    out = capsys.readouterr().out
    assert "class: chair" in out and "wrote" in out
    assert (tmp_path / "o.json").is_file()
    assert expand_inputs(str(src)) == [src]


def test_memory_estimate_matches_the_measured_peak():
    # ru_maxrss of `pointsam predict --model pointnet2_lite_lidarseg_kitti` on a
    # synthetic N x 4 .npy scan: 918 MiB at 1M points ... 5,773 MiB at 10M
    for n, mib in ((1_000_000, 918), (2_000_000, 1487), (4_000_000, 2553),
                   (10_000_000, 5773)):
        est = memory_estimate(n, 1, 19) / 2**20
        assert abs(est - mib) / mib < 0.2
