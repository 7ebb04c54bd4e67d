"""Keep the guides' sweep tables equal to the sweeps' own ``results.md``.

The multi-seed evidence of the documentation lives in ``train/results/NAME/``:
the ``results.md``, ``results.csv``, ``results_seeds.csv``, ``results.png`` and
``sweep.json`` that ``pointsam sweep --out DIR`` wrote (copied with ``--copy``).
Its tables are shown on the user guide pages (``docs/guides/*.md``), each sweep
on the page :data:`PAGES` names, between two markers::

    <!-- sweep NAME TABLE [METRIC] -->
    | ... |
    <!-- /sweep -->

where TABLE is ``configs`` (the "Per configuration" table), ``paired`` (the
"Against the baseline" table; with METRIC, only its rows of that metric) or
``seeds`` (the "Per seed" table). This script rewrites those blocks from the
files, so no number in them is typed by hand; ``--check`` only compares, and
also that every sweep of :data:`PAGES` has a block on its page and no block
is elsewhere (``tests/test_readme_results.py`` runs it). A new sweep shown in
the guides gets its line in :data:`PAGES`.

    python train/readme_results.py --copy /work/sweeps/mn10_dgcnn_lite mn10_dgcnn_lite
    python train/readme_results.py            # rewrite the guides' blocks
    python train/readme_results.py --check    # exit 1 when a block differs or is misplaced
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
#: the guide page (relative to the repository root) that shows each sweep's tables
PAGES = {
    "mn10_dgcnn_lite": "docs/guides/modelnet.md",
    "mn10_pn2_lite_epochs": "docs/guides/modelnet.md",
    "mn10_pn2_lite_gate2": "docs/guides/modelnet.md",
    "mn10_pn2_lite_seconds": "docs/guides/modelnet.md",
    "synthetic_parts": "docs/guides/modelnet.md",
    "lidar": "docs/guides/lidar.md",
    "lidar_fold_a": "docs/guides/lidar.md",
    "lidar_fold_b": "docs/guides/lidar.md",
    "temporal": "docs/guides/temporal.md",
}
#: folders of docs/ that a build writes (never a page of blocks)
GENERATED = ("docs/_build/", "docs/auto_examples/", "docs/api/generated/")
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


def render(page: str, results: Path = RESULTS) -> str:
    """``page`` with every sweep block rewritten from ``results/NAME/results.md``.

    Raises:
        FileNotFoundError: a block names a sweep with no results.md.
        ValueError: a block asks for a table that results.md lacks.
    """
    def one(m: re.Match[str]) -> str:
        name, which, metric = m.group(1), m.group(2), m.group(3)
        path = results / name / "results.md"
        if not path.is_file():
            raise FileNotFoundError(f"block '{name} {which}': {path} not found")
        try:
            rows = table(path.read_text(), which, metric)
        except ValueError as e:
            raise ValueError(f"block '{name} {which}': {path}: {e}") from None
        opening = m.group(0).split("\n", 1)[0]
        return "\n".join([opening, *rows, "<!-- /sweep -->"])

    return BLOCK.sub(one, page)


def misplaced(pages: dict[str, str], where: dict[str, str] | None = None) -> list[str]:
    """What is wrong with where the blocks are, given ``{page path: text}``.

    Every sweep of ``where`` (default :data:`PAGES`) needs at least one block on
    its page, and no page may hold a block of a sweep that ``where`` puts on
    another page or does not name.
    """
    where = PAGES if where is None else where
    found: dict[str, set[str]] = {}
    for rel, text in pages.items():
        for m in BLOCK.finditer(text):
            found.setdefault(m.group(1), set()).add(rel)
    bad = []
    for name, rels in sorted(found.items()):
        if name not in where:
            bad.append(f"{', '.join(sorted(rels))}: block of sweep '{name}', which PAGES "
                       "does not name")
        elif rels - {where[name]}:
            bad.append(f"{', '.join(sorted(rels - {where[name]}))}: block of sweep "
                       f"'{name}', which PAGES puts on {where[name]}")
    for name, rel in sorted(where.items()):
        if rel in pages and rel not in found.get(name, set()):
            bad.append(f"{rel}: no block of sweep '{name}' (PAGES puts it there)")
    return bad


def read_pages(root: Path = ROOT) -> dict[str, str]:
    """``{path relative to root: text}`` of every page a block could be on:
    ``README.md`` and the Markdown sources of ``docs/`` (not what a build wrote)."""
    files = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    out = {}
    for f in files:
        rel = f.relative_to(root).as_posix()
        if f.is_file() and not rel.startswith(GENERATED):
            out[rel] = f.read_text()
    return out


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
                   help="compare only: exit 1 when a block differs or is misplaced")
    p.add_argument("--root", type=Path, default=ROOT,
                   help="the repository whose pages (PAGES, relative to it) are read "
                   "(default: this one; the results are always this one's)")
    args = p.parse_args(argv)
    if args.copy:
        print(f"copied to {copy(Path(args.copy[0]), args.copy[1])}")
    texts = read_pages(args.root)
    missing = sorted(set(PAGES.values()) - set(texts))
    if missing:
        print(f"{args.root}: no {', '.join(missing)}", file=sys.stderr)
        return 1
    texts = {rel: text for rel, text in texts.items()
             if rel in PAGES.values() or BLOCK.search(text)}
    placement = misplaced(texts)
    for problem in placement:
        print(problem, file=sys.stderr)
    status = 1 if placement else 0
    for rel, text in texts.items():
        path = args.root / rel
        new = render(text)
        blocks = len(BLOCK.findall(text))
        if args.check:
            if new != text:
                bad = [f"{a.group(1)} {a.group(2)}" for a, b in
                       zip(BLOCK.finditer(text), BLOCK.finditer(new))
                       if a.group(0) != b.group(0)]
                print(f"{path}: {len(bad)} sweep block(s) differ from "
                      f"train/results: {', '.join(bad)}; run python train/readme_results.py",
                      file=sys.stderr)
                status = 1
            else:
                print(f"{path}: {blocks} sweep blocks match train/results")
            continue
        if new != text:
            path.write_text(new)
        print(f"{path}: {blocks} sweep blocks written")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
