"""Keep the README's sweep tables equal to the sweeps' own ``results.md``.

The multi-seed evidence of the README lives in ``train/results/NAME/``: the
``results.md``, ``results.csv``, ``results_seeds.csv``, ``results.png`` and
``sweep.json`` that ``pointsam sweep --out DIR`` wrote (copied with ``--copy``).
Every table of the README's results sections sits between two markers::

    <!-- sweep NAME TABLE [METRIC] -->
    | ... |
    <!-- /sweep -->

where TABLE is ``configs`` (the "Per configuration" table), ``paired`` (the
"Against the baseline" table; with METRIC, only its rows of that metric) or
``seeds`` (the "Per seed" table). This script rewrites those blocks from the
files, so no number in them is typed by hand; ``--check`` only compares
(``tests/test_readme_results.py`` runs it).

    python train/readme_results.py --copy /work/sweeps/mn10_dgcnn_lite mn10_dgcnn_lite
    python train/readme_results.py            # rewrite the README's blocks
    python train/readme_results.py --check    # exit 1 when a block differs
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "train" / "results"
FILES = ("results.md", "results.csv", "results_seeds.csv", "results.png", "sweep.json")
SECTIONS = {"configs": "## Per configuration", "paired": "## Against the baseline",
            "seeds": "## Per seed"}
BLOCK = re.compile(r"^<!-- sweep (\S+) (configs|paired|seeds)(?: ([^\n]+?))? -->\n"
                   r"(.*?)^<!-- /sweep -->$", re.M | re.S)


def table(results_md: str, which: str, metric: str | None = None) -> list[str]:
    """The markdown table (header, rule, rows) under one heading of results.md.

    Raises:
        ValueError: no such section, no table under it, or no row of ``metric``.
    """
    lines = results_md.splitlines()
    head = SECTIONS[which]
    try:
        start = next(i for i, ln in enumerate(lines) if ln.startswith(head))
    except StopIteration:
        raise ValueError(f"results.md has no section {head!r}") from None
    rows: list[str] = []
    for ln in lines[start + 1:]:
        if ln.startswith("|"):
            rows.append(ln)
        elif rows or ln.startswith("#"):
            break
    if len(rows) < 3:
        raise ValueError(f"no table under {head!r}")
    if metric is not None:
        kept = [r for r in rows[2:] if r.split("|")[2].strip() == metric]
        if not kept:
            raise ValueError(f"no row of metric {metric!r} under {head!r}")
        rows = rows[:2] + kept
    return rows


def render(readme: str, results: Path = RESULTS) -> str:
    """``readme`` with every sweep block rewritten from ``results/NAME/results.md``.

    Raises:
        FileNotFoundError: a block names a sweep with no results.md.
        ValueError: a block asks for a table that results.md lacks.
    """
    def one(m: re.Match[str]) -> str:
        name, which, metric = m.group(1), m.group(2), m.group(3)
        path = results / name / "results.md"
        if not path.is_file():
            raise FileNotFoundError(f"README block '{name} {which}': {path} not found")
        try:
            rows = table(path.read_text(), which, metric)
        except ValueError as e:
            raise ValueError(f"README block '{name} {which}': {path}: {e}") from None
        opening = m.group(0).split("\n", 1)[0]
        return "\n".join([opening, *rows, "<!-- /sweep -->"])

    return BLOCK.sub(one, readme)


def copy(src: Path, name: str, results: Path = RESULTS) -> Path:
    """Copy a sweep folder's reports (not its runs) to ``results/NAME``."""
    missing = [f for f in FILES if not (src / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{src} lacks {', '.join(missing)}: run "
                                f"`pointsam sweep --report-only --out {src}` first")
    dst = results / name
    dst.mkdir(parents=True, exist_ok=True)
    for f in FILES:
        shutil.copyfile(src / f, dst / f)
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--copy", nargs=2, metavar=("SWEEP_DIR", "NAME"),
                   help="copy a sweep's reports to train/results/NAME first")
    p.add_argument("--check", action="store_true",
                   help="compare only: exit 1 when a README block differs")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = p.parse_args(argv)
    if args.copy:
        print(f"copied to {copy(Path(args.copy[0]), args.copy[1])}")
    text = args.readme.read_text()
    new = render(text)
    blocks = len(BLOCK.findall(text))
    if args.check:
        if new != text:
            bad = [f"{a.group(1)} {a.group(2)}" for a, b in
                   zip(BLOCK.finditer(text), BLOCK.finditer(new))
                   if a.group(0) != b.group(0)]
            print(f"{args.readme}: {len(bad)} sweep block(s) differ from "
                  f"train/results: {', '.join(bad)}; run python train/readme_results.py",
                  file=sys.stderr)
            return 1
        print(f"{args.readme}: {blocks} sweep blocks match train/results")
        return 0
    if new != text:
        args.readme.write_text(new)
    print(f"{args.readme}: {blocks} sweep blocks written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
