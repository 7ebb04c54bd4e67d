"""``pointsam sweep CONFIG ... --seeds 0 1 2 --out DIR``: configs x seeds, tabulated.

The orchestration (planning, checking and running the children) and the
report live in :mod:`pointsam.engine.sweep` and
:mod:`pointsam.engine.sweep_report`; this module is the command: its parser and
:func:`cmd_sweep`, which composes them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run", "cmd_sweep"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sweep`` to an ``argparse`` sub-parser set; returns the parser."""
    s = subparsers.add_parser(
        "sweep", help="train configs x seeds in parallel, tabulate mean/std/paired",
        description="Train every CONFIG with every seed (one process and one "
        "thread each, resumable), then write DIR/results.md, results.csv, "
        "results_seeds.csv and results.png.")
    s.add_argument("configs", nargs="*", metavar="CONFIG",
                   help="YAML configs (see train/ and train/lidar/); the first "
                   "is the baseline")
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="train.seed values (default: 0 1 2)")
    s.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a value in every config")
    s.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="runs at once (default: the number of cores)")
    s.add_argument("--baseline", default=None,
                   help="config (path or stem) the others are compared with "
                   "(default: the first)")
    s.add_argument("--out", required=True, help="sweep folder DIR")
    s.add_argument("--report-only", action="store_true",
                   help="only re-aggregate the finished runs in DIR")
    s.add_argument("--dry-run", action="store_true",
                   help="check everything and print the commands; run nothing")
    s.set_defaults(func=run)
    return s


def run(args: argparse.Namespace) -> int:
    """Run the sweep (or only its report); 0 when every run finished."""
    return cmd_sweep(args)


def _command(configs: list[str], seeds: list[int], overrides: list[str], base: str,
             name_base: bool, jobs: int, out: str) -> str:
    """The ``pointsam sweep`` command line that makes (or made) a sweep."""
    return "pointsam sweep " + shlex.join(
        configs + ["--seeds", *map(str, seeds)]
        + [a for o in overrides for a in ("--set", o)]
        + (["--baseline", base] if name_base else [])
        + ["--jobs", str(jobs), "--out", str(out)])


def cmd_sweep(args: Any, log: Callable[[str], None] = print) -> int:
    """Run ``pointsam sweep`` from parsed arguments; 0 when every run finished."""
    from pointsam._atomic import atomic_write_text
    from pointsam.engine.sweep import (
        SweepError,
        baseline_name,
        check_plan,
        plan_sweep,
        read_summary,
        run_sweep,
    )
    from pointsam.engine.sweep_report import fmt_duration, write_report

    out = Path(args.out)
    meta_path = out / "sweep.json"
    configs, seeds, overrides = list(args.configs), list(args.seeds), list(args.overrides)
    baseline = args.baseline
    if not configs:
        if not (args.report_only and meta_path.is_file()):
            raise SweepError("no config given: pointsam sweep CONFIG [CONFIG ...] "
                             "(only --report-only on an existing DIR may omit them)")
        meta = json.loads(meta_path.read_text())
        configs = [c["path"] for c in meta["configs"]]
        seeds, overrides = meta["seeds"], meta["overrides"]
        baseline = baseline or meta.get("baseline")
    runs = plan_sweep(configs, seeds, out, overrides)
    base = baseline_name(runs, baseline)
    command = _command([str(c) for c in configs], seeds, overrides, base,
                       base != runs[0].name, args.jobs, args.out)
    if not args.report_only:
        task = check_plan(runs)
        if args.dry_run:
            for r in runs:
                state = ("finished" if read_summary(r.summary_path) else
                         "resume" if (r.out_dir / "last.pt").is_file() else "new")
                log(f"[{state}] {shlex.join(r.command(state == 'resume'))}")
            return 0
        out.mkdir(parents=True, exist_ok=True)
        listed = {Path(c).stem: str(c) for c in configs}  # run names, paths as given
        all_seeds = list(seeds)
        if meta_path.is_file():  # a sweep extended by a later invocation:
            old = json.loads(meta_path.read_text())  # its report covers both
            if old.get("overrides") == overrides and old.get("task") == task:
                before = {c["name"]: c["path"] for c in old["configs"]}
                if not set(before) <= set(listed):  # added configs go last
                    listed = {**before, **listed}
                all_seeds = sorted(set(old["seeds"]) | set(seeds))
                if args.baseline is None and old.get("baseline") in before:
                    base = old["baseline"]  # the sweep's baseline stays, unless asked
        meta = {"configs": [{"name": n, "path": p} for n, p in listed.items()],
                "seeds": all_seeds, "overrides": overrides, "baseline": base,
                "task": task, "jobs": args.jobs,
                "cpu_count": os.cpu_count(),
                "command": _command(list(listed.values()), all_seeds, overrides,
                                    base, base != next(iter(listed)), args.jobs,
                                    args.out)}
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
        t0 = time.time()
        outcomes = run_sweep(runs, args.jobs, log=log)
        failed = [o.run.label for o in outcomes if o.status == "failed"]
        busy = [o.run.label for o in outcomes if o.status == "busy"]
        log(f"[sweep] finished in {fmt_duration(time.time() - t0)}"
            + (f"; {len(failed)} run(s) failed: " + ", ".join(failed) if failed else "")
            + (f"; {len(busy)} run(s) left to the process(es) training them: "
               + ", ".join(busy) if busy else ""))
    jobs, asked = args.jobs, {(r.name, r.seed) for r in runs}
    if meta_path.is_file():  # as the runs were made
        meta = json.loads(meta_path.read_text())
        jobs = meta.get("jobs", jobs)
        if not args.report_only or not args.configs:  # every config of DIR
            command = meta.get("command", command)
            if meta.get("overrides") == overrides:
                seeds = list(meta["seeds"])
                runs = plan_sweep([c["path"] for c in meta["configs"]], seeds, out,
                                  overrides)
                base = baseline_name(runs, base)
    names = list(dict.fromkeys(r.name for r in runs))
    from pointsam.viz.sweep_figure import sweep_figure

    paths = write_report(out, names, seeds, base, command=command, jobs=jobs,
                         draw=sweep_figure)
    log("[sweep] wrote " + ", ".join(str(p) for p in paths))
    missing = [r for r in runs if read_summary(r.summary_path) is None]
    if missing:
        log(f"[sweep] {len(missing)} run(s) have no summary yet: "
            + ", ".join(r.label for r in missing))
    failed_here = [r for r in missing if (r.name, r.seed) in asked]  # not older gaps
    return 1 if failed_here and not args.report_only else 0

