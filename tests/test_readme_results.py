"""The guides' multi-seed tables are the committed sweep reports, and those
reports agree with their own per-run data.

``train/results/NAME/`` holds what ``pointsam sweep`` wrote for the sweeps the
user guides show; ``train/readme_results.py`` copies its tables onto the guide
page that its ``PAGES`` names (``docs/guides/*.md``), between
``<!-- sweep NAME TABLE -->`` markers. Here: every block equals its table (no
hand-typed number), each sweep's blocks are on its page and nowhere else, and
every ``results.md`` is recomputed from its ``results_seeds.csv`` (mean, sample
std, the paired per-seed differences, their 95% Student-t interval and
verdict), independently of ``pointsam.engine.sweep_report``.
"""

import csv
import math
import re
import runpy
import statistics
from pathlib import Path

import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "train" / "results"
SWEEPS = sorted(p.parent.name for p in RESULTS.glob("*/results.md"))
TOOL = runpy.run_path(str(ROOT / "train" / "readme_results.py"), run_name="readme_results")

#: task metric columns of results_seeds.csv, as results.md labels them
METRICS = {"oa": "OA", "macc": "mAcc", "instance_miou": "instance mIoU",
           "class_miou": "class mIoU", "miou": "mIoU"}


def test_every_guide_sweep_block_is_its_results_table():
    pages = TOOL["read_pages"]()
    blocks = {rel: TOOL["BLOCK"].findall(text) for rel, text in pages.items()}
    names = {name for found in blocks.values() for name, *_ in found}
    # ModelNet10 and SyntheticParts (per-config and paired), and the LiDAR grid
    assert len(blocks["docs/guides/modelnet.md"]) >= 4
    assert len(blocks["docs/guides/lidar.md"]) >= 2
    for rel, text in pages.items():
        assert TOOL["render"](text) == text, rel
    assert TOOL["misplaced"](pages) == []
    assert TOOL["main"](["--check"]) == 0
    assert names == set(TOOL["PAGES"]) and names <= set(SWEEPS)
    assert not blocks["README.md"]  # the README shows no sweep table


def _copy_pages(tmp_path):
    for rel, text in TOOL["read_pages"]().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_a_changed_number_in_a_block_is_caught(tmp_path, capsys):
    root = _copy_pages(tmp_path)
    for rel in sorted(set(TOOL["PAGES"].values())):
        page = root / rel
        text = page.read_text()
        name, which, metric, body = TOOL["BLOCK"].findall(text)[0]
        row = body.splitlines()[2]  # the first data row
        cells = row.split("|")
        cells[3] = cells[3].replace(cells[3].strip()[:1], "0" if cells[3].strip()[:1] != "0"
                                    else "1", 1)
        changed = text.replace(row, "|".join(cells), 1)
        assert changed != text and TOOL["render"](changed) == text
        page.write_text(changed)
        assert TOOL["main"](["--check", "--root", str(root)]) == 1
        assert f"{name} {which}" in capsys.readouterr().err
        page.write_text(text)
        assert TOOL["main"](["--check", "--root", str(root)]) == 0


def test_a_misplaced_or_missing_block_is_caught(tmp_path, capsys):
    root = _copy_pages(tmp_path)
    lidar, modelnet = root / "docs/guides/lidar.md", root / "docs/guides/modelnet.md"
    text = lidar.read_text()
    found = TOOL["BLOCK"].search(text)
    block, name = found.group(0), found.group(1)  # the page's first block
    # a LiDAR block moved to the ModelNet page
    lidar.write_text(text.replace(block, "", 1))
    modelnet.write_text(modelnet.read_text() + "\n" + block + "\n")
    assert TOOL["main"](["--check", "--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"docs/guides/modelnet.md: block of sweep '{name}'" in err
    # every LiDAR block gone from its page
    lidar.write_text(TOOL["BLOCK"].sub("", text))
    assert TOOL["main"](["--check", "--root", str(root)]) == 1
    assert f"docs/guides/lidar.md: no block of sweep '{name}'" in capsys.readouterr().err
    # a block in the README, or of a sweep PAGES does not name
    assert TOOL["misplaced"]({"README.md": block}) == [
        f"README.md: block of sweep '{name}', which PAGES puts on docs/guides/lidar.md"]
    assert "does not name" in TOOL["misplaced"](
        {"docs/guides/lidar.md": block.replace(f"sweep {name}", "sweep other", 1)})[0]


def test_a_block_of_a_missing_sweep_or_table_is_an_error():
    with pytest.raises(FileNotFoundError, match="nope/results.md not found"):
        TOOL["render"]("<!-- sweep nope configs -->\n<!-- /sweep -->\n")
    name = SWEEPS[0]
    with pytest.raises(ValueError, match="no row of metric 'Accuracy'"):
        TOOL["render"](f"<!-- sweep {name} paired Accuracy -->\n<!-- /sweep -->\n")


def _table(md, head):
    return [[c.strip() for c in ln.split("|")[1:-1]]
            for ln in TOOL["table"](md, head)[2:]]


def _pct(v):
    return f"{100 * v:.2f}"


@pytest.mark.parametrize("name", SWEEPS)
def test_results_md_is_recomputed_from_its_per_run_csv(name):
    md = (RESULTS / name / "results.md").read_text()
    with open(RESULTS / name / "results_seeds.csv", newline="") as f:
        runs = list(csv.DictReader(f))
    metrics = [k for k in runs[0] if k in METRICS]  # in the tables' column order
    assert len(metrics) == 2
    by = {}
    for r in runs:
        by.setdefault(r["config"], {})[int(r["seed"])] = r
    configs = _table(md, "configs")
    found = re.search(r"Baseline: `([^`]+)`", md)  # the first config, or --baseline
    assert found and found.group(1) in {row[0] for row in configs}
    base = found.group(1)
    for row in configs:
        seeds = by.get(row[0], {})
        assert int(row[1]) == len(seeds)
        if not seeds:
            continue
        for k, cell in zip(metrics, row[2:4]):
            xs = [float(s[k]) for s in seeds.values()]
            want = _pct(statistics.mean(xs))
            if len(xs) > 1:
                want += f" ± {_pct(statistics.stdev(xs))}"
            assert cell == want, (row[0], k)
        assert row[4] == f"{int(next(iter(seeds.values()))['params']):,}"
    paired = _table(md, "paired")
    assert len(paired) == 2 * (len(configs) - 1)
    for row in paired:
        k = next(m for m in metrics if METRICS[m] == row[1])
        common = sorted(set(by.get(row[0], {})) & set(by[base]))
        d = [float(by[row[0]][s][k]) - float(by[base][s][k]) for s in common]
        if len(d) < 2:
            continue
        assert row[2] == ", ".join(f"{100 * x:+.2f}" for x in d)
        m = statistics.mean(d)
        half = stats.t.ppf(0.975, len(d) - 1) * statistics.stdev(d) / math.sqrt(len(d))
        assert row[3] == f"{100 * m:+.2f}"
        assert row[4] == f"[{100 * (m - half):+.2f}, {100 * (m + half):+.2f}]"
        verdict = ("no measurable difference" if m - half <= 0 <= m + half else
                   "higher than the baseline" if m - half > 0 else
                   "lower than the baseline")
        assert row[5] == verdict
    seeds = _table(md, "seeds")
    assert len(seeds) == len(runs)
    for row, r in zip(seeds, runs):
        assert row[:4] == [r["config"], r["seed"], _pct(float(r[metrics[0]])),
                           _pct(float(r[metrics[1]]))]
